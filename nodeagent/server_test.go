package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
	"github.com/kplex/kplex/tenant/nodeconn"
)

// startServingAgent starts node-1's agent (simulated runtime) serving
// the apiserver; it returns the agent's port and the PKI.
func startServingAgent(t *testing.T, env *servertest.Env) (int, pki.Files) {
	t.Helper()
	// The test listens for the agent: a port found free and then closed
	// may be taken by another test's server before the agent binds it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := pki.Files{Dir: filepath.Join(env.DataDir, "pki")}
	startAgent(t, env, "node-1", simulated.New(), func(c *Config) {
		c.Listener = l
		c.ClientCAFile = files.CACert()
	})
	return l.Addr().(*net.TCPAddr).Port, files
}

func execIn(t *testing.T, cfg *rest.Config, c kubernetes.Interface, pod string, cmd ...string) (string, error) {
	req := c.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name(pod).SubResource("exec").
		VersionedParams(&v1.PodExecOptions{Container: "app", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	err = exec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	return out.String() + errb.String(), err
}

func TestIntegrationLogsAndExecReachTheRightTenantsPod(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "")
	env.RunControllers(t)
	aCfg, bCfg := env.CreateTenant(t, "a"), env.CreateTenant(t, "b")
	a, b := servertest.Client(t, aCfg), servertest.Client(t, bCfg)
	ctx := context.Background()
	port, files := startServingAgent(t, env)
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hi"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Pods("default").Create(ctx, pod("web", "node-1", v1.RestartPolicyAlways, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPhase(t, c, "web", v1.PodRunning)
	}

	for name, c := range map[string]kubernetes.Interface{"a": a, "b": b} {
		other := map[string]string{"a": "b", "b": "a"}[name]
		logs, err := c.CoreV1().Pods("default").GetLogs("web", &v1.PodLogOptions{Container: "app"}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("tenant %s: logs: %v (%s)", name, err, logs)
		}
		if !strings.Contains(string(logs), name+"~default/web") || strings.Contains(string(logs), other+"~") {
			t.Errorf("tenant %s reads logs %q: want its own pod's only", name, logs)
		}
	}
	cfgs := map[string]*rest.Config{"a": aCfg, "b": bCfg}
	for name, c := range map[string]kubernetes.Interface{"a": a, "b": b} {
		out, err := execIn(t, cfgs[name], c, "web", "echo", "in", name)
		if err != nil || out != "in "+name+"\n" {
			t.Errorf("tenant %s: exec echo: %q, %v", name, out, err)
		}
	}
	// A pod only b has is not found through a.
	if _, err := b.CoreV1().Pods("default").Create(ctx, pod("only-b", "node-1", v1.RestartPolicyAlways, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, b, "only-b", v1.PodRunning)
	if _, err := a.CoreV1().Pods("default").GetLogs("only-b", &v1.PodLogOptions{}).DoRaw(ctx); err == nil {
		t.Error("tenant a read logs of b's pod only-b")
	}

	// The agent serves the apiserver only: the admin's certificate, signed
	// by the same CA, is refused, whatever tenant it names.
	adminCert, err := tls.LoadX509KeyPair(files.AdminCert(), files.AdminKey())
	if err != nil {
		t.Fatal(err)
	}
	dial := nodeconn.Dialer(nil)
	client := &http.Client{Transport: &http.Transport{
		DialContext:     dial,
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{adminCert}, InsecureSkipVerify: true},
	}}
	resp, err := client.Get("https://" + net.JoinHostPort(nodeconn.Hostname("a", "127.0.0.1"), strconv.Itoa(port)) + "/containerLogs/default/web/app")
	if err == nil {
		resp.Body.Close()
		t.Errorf("the agent served the admin's certificate: %s", resp.Status)
	}
}
