package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"

	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// controllerManager is bin/kplex-controller-manager run against the
// apiserver under test, and what it is measured by.
type controllerManager struct {
	proc    *process
	metrics string
	client  *http.Client
}

// startControllerManager runs the controller manager with admin's
// credentials, without leader election.
func startControllerManager(opts Options, work string, admin *rest.Config) (*controllerManager, error) {
	kubeconfig := filepath.Join(work, "controllers.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kplex"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthority: admin.CAFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: admin.CertFile, ClientKey: admin.KeyFile}
	cfg.Contexts["kplex-root"] = &clientcmdapi.Context{Cluster: "kplex", AuthInfo: "admin"}
	cfg.CurrentContext = "kplex-root"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	proc, err := start(filepath.Join(work, "kplex-controller-manager.log"), filepath.Join(opts.BinDir, "kplex-controller-manager"),
		"--kubeconfig", kubeconfig, "--leader-elect=false", "--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	// Metrics are served over HTTPS to authorized callers only: the
	// admin's client certificate; the serving certificate is self-signed.
	cert, err := tls.LoadX509KeyPair(admin.CertFile, admin.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the admin's client certificate: %w", err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}} //nolint:gosec // a self-signed certificate of a process this bench started
	cm := &controllerManager{proc: proc, metrics: "https://" + addr, client: &http.Client{Timeout: 10 * time.Second, Transport: transport}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := cm.client.Get(cm.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cm, nil
		}
		if time.Now().After(deadline) {
			proc.stop()
			return nil, fmt.Errorf("the controller manager serves no /healthz within a minute: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAsleep waits for the controller manager to have woken tenants'
// controllers and for all of them to be asleep again.
func (cm *controllerManager) waitAsleep(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		woken, err := metricSum(cm.client, cm.metrics, "kplex_tenant_controllers_wakes_total")
		if err != nil {
			return err
		}
		awake, err := metricSum(cm.client, cm.metrics, "kplex_tenant_controllers_awake")
		if err != nil {
			return err
		}
		if woken > 0 && awake == 0 {
			progress("%d tenant controller instances woke and went back to sleep", woken)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tenant controller instances still awake after %s", awake, woken, timeout)
		}
		time.Sleep(2 * time.Second)
	}
}

// sample returns the controller manager's RSS and goroutines.
func (cm *controllerManager) sample() (rss, goroutines int64, err error) {
	if rss, err = cm.proc.rss(); err != nil {
		return 0, 0, err
	}
	goroutines, err = metric(cm.client, cm.metrics, "go_goroutines")
	return rss, goroutines, err
}

// controllersSample is the controller manager's cost at some N.
type controllersSample struct {
	rss, goroutines int64
	// serviceAccounts is how many default service accounts the tenants have.
	serviceAccounts int
	// deployments are timed after the sample, with the tenants' controllers
	// asleep.
	deployments *deployments
}

// measureControllers starts the controller manager, waits for it to have
// done its work and for the tenants' controllers to sleep again, samples
// it and stops it. With tenants, it also counts the tenants' default
// service accounts, which it must have made, and times deployments.
func measureControllers(opts Options, work string, admin *rest.Config, names []string) (*controllersSample, error) {
	tenants := len(names)
	cm, err := startControllerManager(opts, work, admin)
	if err != nil {
		return nil, err
	}
	defer cm.proc.stop()
	if tenants > 0 {
		// The start-up sweep wakes every tenant; its controllers sleep after
		// the quiet period (1m).
		if err := cm.waitAsleep(5 * time.Minute); err != nil {
			return nil, err
		}
	}
	time.Sleep(opts.Settle)
	out := &controllersSample{}
	if out.rss, out.goroutines, err = cm.sample(); err != nil {
		return nil, err
	}
	if tenants > 0 {
		if out.serviceAccounts, err = countDefaultServiceAccounts(admin); err != nil {
			return nil, err
		}
	}
	if tenants >= aloneTenants+togetherTenants {
		progress("deployments of %d replicas: %d tenants one at a time, then %d at once", benchReplicas, aloneTenants, togetherTenants)
		if out.deployments, err = measureDeployments(admin, names); err != nil {
			return nil, fmt.Errorf("timing deployments: %w", err)
		}
	}
	return out, nil
}

// countDefaultServiceAccounts counts the default service accounts of every
// tenant, across tenants.
func countDefaultServiceAccounts(admin *rest.Config) (int, error) {
	client, err := rest.HTTPClientFor(admin)
	if err != nil {
		return 0, err
	}
	resp, err := client.Get(admin.Host + "/clusters/*/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var list struct{ Items []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}
