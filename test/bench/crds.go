package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kplex/kplex/tenant"
)

// crds is what a CRD costs a tenant.
type crds struct {
	// established: CRD create → Established, every tenant.
	established []time.Duration
	// firstCR: CRD create → its first custom resource accepted, a sample.
	// Upstream holds creates back for 2 s after Established (for HA
	// replicas that have not yet seen it); kplex keeps that.
	firstCR []time.Duration
	// webhookCalls is how often the tenants' webhook was called for the
	// custom resources: once per tenant when every tenant's applies.
	webhookCalls int64
}

// crdSample is how many tenants measure create → first custom resource.
const crdSample = 10

func crdBody(plural, kind string) string {
	return fmt.Sprintf(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"%[1]s.example.com"},
"spec":{"group":"example.com","scope":"Namespaced",
"names":{"plural":"%[1]s","singular":"%[2]s","kind":"%[3]s","listKind":"%[3]sList"},
"versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","properties":{"size":{"type":"integer"},"color":{"type":"string","default":"red"}}}}}}}]}}`,
		plural, strings.ToLower(kind), kind)
}

func crBody(kind, name string) string {
	return fmt.Sprintf(`{"apiVersion":"example.com/v1","kind":%q,"metadata":{"name":%q},"spec":{"size":1}}`, kind, name)
}

// measureCRDs gives every tenant one CRD, a validating webhook on it, and
// one custom resource, which the webhook admits.
// Before the custom resources it runs touch, and after them live, which
// measures memory while every tenant's webhook plugin is live.
func measureCRDs(client *http.Client, url string, names []string, touch, live func() error) (*crds, error) {
	out := &crds{}
	hook := startWebhook()
	defer hook.Close()
	for i, name := range names {
		base := url + tenant.Path(name)
		began := time.Now()
		if err := post(client, base+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crdBody("widgets", "Widget")); err != nil {
			return nil, err
		}
		if err := pollEstablished(client, base, "widgets.example.com"); err != nil {
			return nil, err
		}
		out.established = append(out.established, time.Since(began))
		if (i+1)%500 == 0 {
			progress("%d tenants have a CRD", i+1)
		}
	}
	progress("a validating webhook in every tenant")
	if err := registerWebhooks(client, url, names, hook); err != nil {
		return nil, err
	}
	if err := touch(); err != nil {
		return nil, err
	}
	progress("one custom resource in every tenant")
	if err := parallel(names, 8, func(name string) error {
		return post(client, url+tenant.Path(name)+"/apis/example.com/v1/namespaces/default/widgets", crBody("Widget", "w1"))
	}); err != nil {
		return nil, err
	}
	out.webhookCalls = hook.calls.Load()
	if err := live(); err != nil {
		return nil, err
	}
	progress("create CRD → first custom resource, %d tenants", min(crdSample, len(names)))
	for _, name := range names[:min(crdSample, len(names))] {
		base := url + tenant.Path(name)
		began := time.Now()
		if err := post(client, base+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crdBody("gadgets", "Gadget")); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Minute)
		for {
			err := post(client, base+"/apis/example.com/v1/namespaces/default/gadgets", crBody("Gadget", "g1"))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("tenant %s: no gadget accepted within a minute: %w", name, err)
			}
			time.Sleep(time.Millisecond)
		}
		out.firstCR = append(out.firstCR, time.Since(began))
	}
	return out, nil
}

func pollEstablished(client *http.Client, base, crd string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + crd)
		if err != nil {
			return err
		}
		var got struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s%s not Established within a minute", base, crd)
}

func post(client *http.Client, url, body string) error {
	resp, err := client.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, msg)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// parallel runs f for every item on workers goroutines; the first error wins.
func parallel[T any](items []T, workers int, f func(T) error) error {
	work := make(chan T)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for item := range work {
				if err := f(item); err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
		})
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}
