package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/kplex/kplex/tenant"
)

// webhook is an admission webhook every tenant registers: it allows
// everything and counts its calls.
type webhook struct {
	*httptest.Server
	calls atomic.Int64
}

func startWebhook() *webhook {
	w := &webhook{}
	w.Server = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.calls.Add(1)
		var review struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Request    struct {
				UID string `json:"uid"`
			} `json:"request"`
		}
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{
			"apiVersion": review.APIVersion, "kind": review.Kind,
			"response": map[string]any{"uid": review.Request.UID, "allowed": true},
		})
	}))
	return w
}

// configuration is a ValidatingWebhookConfiguration on the tenant's
// widgets, sent to w.
func (w *webhook) configuration() string {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.Certificate().Raw})
	caJSON, _ := json.Marshal(ca)
	return fmt.Sprintf(`{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration",
"metadata":{"name":"widgets.bench.kplex.io"},
"webhooks":[{"name":"widgets.bench.kplex.io","sideEffects":"None","admissionReviewVersions":["v1"],"failurePolicy":"Fail",
"clientConfig":{"url":%q,"caBundle":%s},
"rules":[{"apiGroups":["example.com"],"apiVersions":["*"],"resources":["widgets"],"operations":["CREATE","UPDATE"]}]}]}`,
		w.URL+"/validate", caJSON)
}

// registerWebhooks gives every tenant the webhook's configuration.
func registerWebhooks(client *http.Client, url string, names []string, w *webhook) error {
	body := w.configuration()
	return parallel(names, 4, func(name string) error {
		return post(client, url+tenant.Path(name)+"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", body)
	})
}
