package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplex/kplex/dataplane/cni"
	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
	"github.com/kplex/kplex/test/netlab"
)

func needPodNetwork(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e test: runs the kplex binaries and kubectl")
	}
	if err := netlab.Missing(); err != nil {
		t.Skipf("pod network test needs: %v", err)
	}
}

// newLab makes test hosts in network namespaces of the test's own
// (package netlab), removed when the test ends.
func newLab(t *testing.T, nodes int) *netlab.Lab {
	t.Helper()
	l, err := netlab.New(fmt.Sprintf("kx%d", os.Getpid()%100000), nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Destroy() })
	return l
}

// node is a kplex node in a namespace of the lab: containerd and
// kplex-nodeagent.
type node struct {
	rootDir string
	name    string
	netns   string
	ip      string
	ctrd    *containerd.Containerd
	agent   *agent
}

// startNode runs containerd and kplex-nodeagent (pod network on) in the
// lab's node i, registered with m's apiserver at the control plane's
// address.
func (m *machine) startNode(l *netlab.Lab, i int, extra ...string) *node {
	m.t.Helper()
	n := &node{name: fmt.Sprintf("node-%d", i+1), netns: l.Nodes[i], ip: l.NodeIP(i)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctrd, err := containerd.StartIn(ctx, m.t.TempDir(), n.netns)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { _ = ctrd.Stop() })
	n.ctrd = ctrd
	dir := m.t.TempDir()
	n.rootDir = filepath.Join(dir, "root")
	kubeconfig := filepath.Join(dir, "root.kubeconfig")
	flat := m.must(m.kubectl("config", "view", "--minify", "--flatten", "--context=kplex-root"))
	flat = strings.ReplaceAll(flat, "https://127.0.0.1:", "https://"+l.CtlIP()+":")
	if err := os.WriteFile(kubeconfig, []byte(flat), 0o600); err != nil {
		m.t.Fatal(err)
	}
	n.agent = &agent{t: m.t, log: filepath.Join(dir, "agent.log"), args: []string{
		"--net=" + netlab.Path(n.netns), filepath.Join(binDir, "kplex-nodeagent"),
		"--kubeconfig=" + kubeconfig, "--hostname-override=" + n.name,
		"--container-runtime-endpoint=" + ctrd.Endpoint,
		"--address=" + n.ip, "--port=10250", "--node-ip=" + n.ip,
		"--client-ca-file=" + filepath.Join(m.dataDir, "pki", "ca.crt"),
		"--root-dir=" + n.rootDir, "--device-plugin-dir=" + filepath.Join(dir, "dp"),
		"--network=cni", "--cni-conf-dir=" + ctrd.CNIConfDir, "--cni-bin-dir=" + ctrd.CNIBinDir,
		"--sync-frequency=250ms", "-v=2",
	}}
	n.agent.args = append(n.agent.args, extra...)
	n.agent.bin = "nsenter"
	n.agent.start()
	m.t.Cleanup(n.agent.stop)
	return n
}

// exec runs a command in a tenant's pod and returns its output and error.
func (m *machine) execIn(tenant, pod string, command ...string) (string, error) {
	out, errOut, err := m.kubectl(append([]string{"--context=kplex-" + tenant, "exec", pod, "--"}, command...)...)
	if err != nil {
		return out + errOut, err
	}
	return out, nil
}

// fetch asks url from a tenant's pod with busybox wget, 3 s at most
// (busybox's own timeout: its wget -T crashes in Debian's build).
func (m *machine) fetch(tenant, pod, url string) (string, error) {
	return m.execIn(tenant, pod, "timeout", "3", "wget", "-q", "-O-", url)
}

// timedOut tells a fetch that got no answer at all (dropped: timeout's
// exit status 143) from one refused or answered.
func timedOut(out string, err error) bool {
	return err != nil && strings.Contains(out, "exit code 143")
}

// webPod is a pod serving its tenant's name over HTTP on port 80, on node.
func webManifest(tenant, node string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[2]s}
      containers:
      - name: httpd
        image: %[3]s
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www && echo tenant-%[1]s > /www/index.html && exec httpd -f -p 80 -h /www']
        ports: [{name: http, containerPort: 80, hostPort: 8080}]
        # The agent probes the pod at its own IP (the node's address
        # answers nothing on port 80): Ready only if it does.
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: node-2
  containers:
  - name: sh
    image: %[3]s
    imagePullPolicy: Never
    command: [sleep, "3600"]
`, tenant, node, images.Busybox)
}

// TestE2EPodNetworkAcrossTenantsAndNodes: two tenants deploy the same web
// Deployment, Services and client pod on two nodes (network namespaces of
// their own, each with containerd and kplex-nodeagent). Each client reaches
// its own web by Service name, FQDN, cluster IP, pod IP (across nodes) and
// NodePort, and gets its own tenant's answer; the other tenant's pod IP,
// cluster IP and NodePort time out.
func TestE2EPodNetworkAcrossTenantsAndNodes(t *testing.T) {
	needPodNetwork(t)
	l := newLab(t, 3)
	m := newMachine(t)
	m.netns = l.Ctl
	m.up("--runtime=none", "--bind-address=0.0.0.0", "--advertise-address="+l.CtlIP())
	nodes := []*node{m.startNode(l, 0), m.startNode(l, 1)}
	for _, n := range nodes {
		m.must(m.kubectl("--context=kplex-root", "wait", "--for=condition=Ready", "node/"+n.name, "--timeout=120s"))
		cidr := m.must(m.kubectl("--context=kplex-root", "get", "node", n.name, "-o", "jsonpath={.spec.podCIDR}"))
		if !strings.HasPrefix(cidr, "10.244.") {
			t.Fatalf("node %s pod CIDR %q, want one of 10.244.0.0/16", n.name, cidr)
		}
	}
	// A third node has no CNI plugins: it says so, and its pods wait.
	broken := m.startNode(l, 2, "--cni-bin-dir=/nonexistent/cni")
	// Tenant a's web runs on node-1 (reached across nodes), b's on node-2
	// (beside both clients).
	webNode := map[string]string{"a": "node-1", "b": "node-2"}
	for _, tn := range []string{"a", "b"} {
		// hostPorts are among what is tested: Pod Security baseline, the
		// default level, forbids them. The agent's own fences still hold
		// for privileged tenants (the hostNetwork pod below).
		m.must(m.kplex("create", "cluster", tn, "--pod-security=privileged"))
		m.apply(tn, webManifest(tn, webNode[tn]))
	}
	type addrs struct{ podIP, clusterIP, nodePort string }
	got := map[string]addrs{}
	for _, tn := range []string{"a", "b"} {
		ctx := "--context=kplex-" + tn
		m.must(m.kubectl(ctx, "wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=120s"))
		m.must(m.kubectl(ctx, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s"))
		a := addrs{
			podIP:     m.must(m.kubectl(ctx, "get", "pod", "-l", "app=web", "-o", "jsonpath={.items[0].status.podIP}")),
			clusterIP: m.must(m.kubectl(ctx, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")),
			nodePort:  m.must(m.kubectl(ctx, "get", "svc", "web-nodeport", "-o", "jsonpath={.spec.ports[0].nodePort}")),
		}
		if !strings.HasPrefix(a.podIP, "10.244.") {
			t.Fatalf("tenant %s web pod IP %q: not from the pod CIDRs", tn, a.podIP)
		}
		got[tn] = a
	}
	if got["a"].podIP == got["b"].podIP || got["a"].clusterIP == got["b"].clusterIP {
		t.Fatalf("tenants share addresses: %+v", got)
	}

	for _, tn := range []string{"a", "b"} {
		own := got[tn]
		want := "tenant-" + tn
		for _, url := range []string{
			"http://web", "http://web.default", "http://web.default.svc.cluster.local",
			"http://" + own.clusterIP, "http://" + own.podIP,
			"http://" + nodes[0].ip + ":" + own.nodePort,
		} {
			out, err := m.fetch(tn, "client", url)
			if err != nil || strings.TrimSpace(out) != want {
				t.Errorf("tenant %s client: %s answered %q (%v), want %q", tn, url, out, err, want)
			}
		}
		other := got[map[string]string{"a": "b", "b": "a"}[tn]]
		for _, url := range []string{"http://" + other.podIP, "http://" + other.clusterIP, "http://" + nodes[0].ip + ":" + other.nodePort} {
			out, err := m.fetch(tn, "client", url)
			if !timedOut(out, err) {
				t.Errorf("tenant %s client reached the other tenant at %s: %q (%v); want a timeout", tn, url, out, err)
			}
		}
		// The same name resolves to each tenant's own cluster IP.
		out, err := m.execIn(tn, "client", "nslookup", "web.default.svc.cluster.local")
		if err != nil || !strings.Contains(out, own.clusterIP) || strings.Contains(out, other.clusterIP) {
			t.Errorf("tenant %s: nslookup web: %q (%v), want %s only", tn, out, err, own.clusterIP)
		}
		// busybox nslookup uses no search path: full names only.
		out, err = m.execIn(tn, "client", "nslookup", "kubernetes.default.svc.cluster.local")
		if err != nil || !strings.Contains(out, "10.96.0.1") {
			t.Errorf("tenant %s: nslookup kubernetes.default.svc.cluster.local: %q (%v)", tn, out, err)
		}
		env, err := m.execIn(tn, "client", "env")
		if err != nil || !strings.Contains(env, "KUBERNETES_SERVICE_HOST=10.96.0.1") || !strings.Contains(env, "WEB_SERVICE_HOST="+own.clusterIP) {
			t.Errorf("tenant %s: service variables missing: %q (%v)", tn, env, err)
		}
	}

	t.Run("a node without CNI plugins says so and runs no pod on the host's network", func(t *testing.T) {
		eventually(t, 60*time.Second, func() (bool, string) {
			msg := m.must(m.kubectl("--context=kplex-root", "get", "node", broken.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`))
			return strings.Contains(msg, "NetworkReady=false") && strings.Contains(msg, "CNI plugins bridge, host-local, portmap, loopback not found in /nonexistent/cni"), fmt.Sprintf("node-3's Ready message: %q", msg)
		})
		m.apply("a", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: stranded}
spec:
  nodeName: %s
  containers:
  - name: sh
    image: %s
    imagePullPolicy: Never
    command: [sleep, "3600"]
`, broken.name, images.Busybox))
		eventually(t, 60*time.Second, func() (bool, string) {
			out := m.must(m.kubectl("--context=kplex-a", "get", "pod", "stranded", "-o", `jsonpath={.status.phase} {.status.podIP} {.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}`))
			return strings.HasPrefix(out, "Pending  NetworkNotReady: network is not ready: CNI plugins"), fmt.Sprintf("stranded pod: %q", out)
		})
		m.must(m.kubectl("--context=kplex-a", "delete", "pod", "stranded", "--grace-period=0", "--force"))
	})

	t.Run("what a tenant writes opens nothing of another tenant", func(t *testing.T) {
		// a points a Service of its own at b's pod: the proxier translates,
		// isolation drops.
		m.apply("a", fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: steal}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: steal-1
  labels: {kubernetes.io/service-name: steal}
addressType: IPv4
ports: [{name: http, port: 80}]
endpoints: [{addresses: [%s]}]
`, got["b"].podIP))
		clusterIP := m.must(m.kubectl("--context=kplex-a", "get", "svc", "steal", "-o", "jsonpath={.spec.clusterIP}"))
		// Wait for the Service on node-2 (DNS answers), then ask it.
		eventually(t, 30*time.Second, func() (bool, string) {
			out, err := m.execIn("a", "client", "nslookup", "steal.default.svc.cluster.local")
			return err == nil && strings.Contains(out, clusterIP), fmt.Sprintf("steal not in a's DNS: %q (%v)", out, err)
		})
		time.Sleep(2 * time.Second) // the proxier's minimum sync period
		if out, err := m.fetch("a", "client", "http://steal"); !timedOut(out, err) {
			t.Errorf("a reached b's pod through an EndpointSlice of its own: %q (%v)", out, err)
		}
		// A hostNetwork pod would be the shared node itself: refused by the
		// node agent, whatever the tenant's level allowed.
		m.apply("a", `apiVersion: v1
kind: Pod
metadata: {name: on-the-host}
spec:
  hostNetwork: true
  nodeName: node-2
  containers:
  - name: sh
    image: `+images.Busybox+`
    imagePullPolicy: Never
    command: [sleep, "3600"]
`)
		eventually(t, 30*time.Second, func() (bool, string) {
			out := m.must(m.kubectl("--context=kplex-a", "get", "pod", "on-the-host", "-o", "jsonpath={.status.phase} {.status.reason}"))
			return out == "Failed HostNetworkRefused", fmt.Sprintf("a's hostNetwork pod on a shared node: %q", out)
		})
	})

	t.Run("hostPorts reach their own tenant's pod only", func(t *testing.T) {
		// a's web runs on node-1 with hostPort 8080.
		if out, err := m.fetch("a", "client", "http://"+nodes[0].ip+":8080"); err != nil || strings.TrimSpace(out) != "tenant-a" {
			t.Errorf("a's client on node-1's hostPort: %q (%v)", out, err)
		}
		if out, err := m.fetch("b", "client", "http://"+nodes[0].ip+":8080"); !timedOut(out, err) {
			t.Errorf("b's client reached a's pod through node-1's hostPort: %q (%v)", out, err)
		}
	})

	t.Run("in-cluster client reaches its own tenant's API only", func(t *testing.T) {
		for _, tn := range []string{"a", "b"} {
			other := map[string]string{"a": "b", "b": "a"}[tn]
			ctx := "--context=kplex-" + tn
			m.must(m.kubectl(ctx, "create", "rolebinding", "default-edit", "--clusterrole=edit", "--serviceaccount=default:default"))
			m.apply(tn, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: incluster}
spec:
  restartPolicy: Never
  nodeName: node-1
  containers:
  - name: client
    image: %s
    imagePullPolicy: Never
    command: [/incluster, --other-tenant=%s, --configmap=made-in-%s]
`, images.InCluster, other, tn))
		}
		for _, tn := range []string{"a", "b"} {
			ctx := "--context=kplex-" + tn
			m.must(m.kubectl(ctx, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/incluster", "--timeout=120s"))
			logs := m.must(m.kubectl(ctx, "logs", "incluster"))
			if !strings.Contains(logs, "pods: ") || !strings.Contains(logs, "client") || !strings.Contains(logs, "created: made-in-"+tn) {
				t.Errorf("tenant %s in-cluster client: %q", tn, logs)
			}
			if !strings.Contains(logs, "other tenant: 401") && !strings.Contains(logs, "other tenant: 403") {
				t.Errorf("tenant %s in-cluster client reached the other tenant's path: %q", tn, logs)
			}
			m.must(m.kubectl(ctx, "get", "configmap", "made-in-"+tn))
			other := map[string]string{"a": "b", "b": "a"}[tn]
			m.mustFail(m.kubectl("--context=kplex-"+other, "get", "configmap", "made-in-"+tn))
		}
	})

	t.Run("lifecycle hooks and probes reach the pod at its own IP", func(t *testing.T) {
		// As upstream's conformance tests: a recorder logs the requests
		// the hooks send; exec hooks run in the container.
		m.apply("b", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: hook-recorder}
spec:
  containers:
  - name: httpd
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && exec httpd -f -vv -p 8080 -h /www']
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`, images.Busybox))
		m.must(m.kubectl("--context=kplex-b", "wait", "--for=condition=Ready", "pod/hook-recorder", "--timeout=120s"))
		recorder := m.must(m.kubectl("--context=kplex-b", "get", "pod", "hook-recorder", "-o", "jsonpath={.status.podIP}"))
		m.apply("b", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  containers:
  - name: http-hooks
    image: %[1]s
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      postStart: {httpGet: {host: %[2]s, port: 8080, path: /poststart-http}}
      preStop: {httpGet: {host: %[2]s, port: 8080, path: /prestop-http}}
  - name: exec-hooks
    image: %[1]s
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'echo done > /tmp/poststart']}}
      preStop: {exec: {command: [wget, -q, -O-, 'http://%[2]s:8080/prestop-exec']}}
`, images.Busybox, recorder))
		m.must(m.kubectl("--context=kplex-b", "wait", "--for=condition=Ready", "pod/hooked", "--timeout=120s"))
		if out := m.must(m.kubectl("--context=kplex-b", "exec", "hooked", "-c", "exec-hooks", "--", "cat", "/tmp/poststart")); strings.TrimSpace(out) != "done" {
			t.Errorf("the postStart exec hook's file holds %q", out)
		}
		eventually(t, 30*time.Second, func() (bool, string) {
			logs, _, _ := m.kubectl("--context=kplex-b", "logs", "hook-recorder")
			return strings.Contains(logs, "url:/poststart-http"), "the recorder never saw the postStart HTTP hook:\n" + logs
		})
		m.must(m.kubectl("--context=kplex-b", "delete", "pod", "hooked", "--timeout=90s"))
		logs := m.must(m.kubectl("--context=kplex-b", "logs", "hook-recorder"))
		for _, path := range []string{"/prestop-http", "/prestop-exec"} {
			if !strings.Contains(logs, "url:"+path) {
				t.Errorf("the recorder never saw the preStop hook %s:\n%s", path, logs)
			}
		}
	})
	t.Run("a NetworkPolicy denying ingress in a takes effect in a only", func(t *testing.T) {
		m.apply("a", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
`)
		eventually(t, 30*time.Second, func() (bool, string) {
			out, err := m.fetch("a", "client", "http://web")
			return timedOut(out, err), fmt.Sprintf("a's client still reaches a's web past a deny-all ingress policy: %q (%v)", out, err)
		})
		if out, err := m.fetch("b", "client", "http://web"); err != nil || strings.TrimSpace(out) != "tenant-b" {
			t.Errorf("b's web, with a policy in a only: %q (%v)", out, err)
		}
		// a allows the whole pod network in: its own client again, never
		// b's, and a warning says why.
		m.apply("a", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-pod-network}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.0/16}}]
`)
		eventually(t, 30*time.Second, func() (bool, string) {
			out, err := m.fetch("a", "client", "http://web")
			return err == nil && strings.TrimSpace(out) == "tenant-a", fmt.Sprintf("a's client blocked despite an ipBlock allowing the pod network: %q (%v)", out, err)
		})
		if out, err := m.fetch("b", "client", "http://"+got["a"].podIP); !timedOut(out, err) {
			t.Errorf("b reached a's web through a's ipBlock: %q (%v)", out, err)
		}
		eventually(t, 30*time.Second, func() (bool, string) {
			events := m.must(m.kubectl("--context=kplex-a", "get", "events", "--field-selector=reason=InertNetworkPolicyRule", "-o", "jsonpath={.items[*].message}"))
			return strings.Contains(events, "spec.ingress[0].from[0].ipBlock 10.244.0.0/16"), fmt.Sprintf("no InertNetworkPolicyRule event in a: %q", events)
		})
		if events := m.must(m.kubectl("--context=kplex-b", "get", "events", "--field-selector=reason=InertNetworkPolicyRule", "-o", "name")); events != "" {
			t.Errorf("b sees a's policy warning: %q", events)
		}
		m.must(m.kubectl("--context=kplex-a", "delete", "networkpolicy", "deny-web", "allow-pod-network"))
		eventually(t, 30*time.Second, func() (bool, string) {
			out, err := m.fetch("a", "client", "http://web")
			return err == nil && strings.TrimSpace(out) == "tenant-a", fmt.Sprintf("a's web unreachable after the policy went: %q (%v)", out, err)
		})
	})

	t.Run("an agent restart keeps pods' IPs and rules", func(t *testing.T) {
		n := nodes[0]
		before := m.must(m.kubectl("--context=kplex-a", "get", "pod", "-l", "app=web", "-o", "jsonpath={.items[0].status.podIP}"))
		// rules are what each table holds (nft's JSON, without handles):
		// the isolation and masquerade tables whole (they are rewritten
		// whole), the proxier's Services (its map of cluster IPs: its
		// chains it garbage-collects late); no chain may hold a rule twice.
		rules := func() map[string][]string {
			got := map[string][]string{}
			for _, table := range []string{"inet kplex-isolation", "ip kube-proxy", "ip kplex-nat"} {
				out, err := netlab.Command(netlab.Path(n.netns), "nft", append([]string{"-j", "list", "table"}, strings.Fields(table)...)...).Output()
				if err != nil {
					t.Fatalf("nft list table %s on %s: %v", table, n.name, err)
				}
				var doc struct{ Nftables []map[string]map[string]any }
				if err := json.Unmarshal(out, &doc); err != nil {
					t.Fatalf("nft -j list table %s: %v", table, err)
				}
				seen := map[string]bool{}
				for _, obj := range doc.Nftables {
					for kind, o := range obj {
						delete(o, "handle")
						var items []string
						switch {
						case kind == "rule" && table != "ip kube-proxy":
							b, _ := json.Marshal(o)
							items = []string{string(b)}
							if seen[items[0]] {
								t.Errorf("%s on %s holds a rule twice: %s", table, n.name, b)
							}
							seen[items[0]] = true
						case (kind == "set" || kind == "map") && (table != "ip kube-proxy" || o["name"] == "service-ips"):
							elems, _ := o["elem"].([]any)
							for _, e := range elems {
								b, _ := json.Marshal(e)
								items = append(items, fmt.Sprintf("%s %v %s", kind, o["name"], b))
							}
						}
						got[table] = append(got[table], items...)
					}
				}
				slices.Sort(got[table])
			}
			return got
		}
		rulesBefore := rules()
		n.agent.stop()
		n.agent.start()
		m.must(m.kubectl("--context=kplex-root", "wait", "--for=condition=Ready", "node/"+n.name, "--timeout=120s"))
		// The new agent has synced once its rules are back and the pod
		// answers again.
		eventually(t, 60*time.Second, func() (bool, string) {
			out, err := m.fetch("a", "client", "http://web")
			return err == nil && strings.TrimSpace(out) == "tenant-a", fmt.Sprintf("a's web unreachable after node-1's agent restarted: %q (%v)", out, err)
		})
		after := m.must(m.kubectl("--context=kplex-a", "get", "pod", "-l", "app=web", "-o", "jsonpath={.items[0].status.podIP}"))
		if before != after {
			t.Errorf("a's web pod IP changed across the agent restart: %s → %s", before, after)
		}
		// node-1's proxier programs its Services a moment after it starts.
		eventually(t, 60*time.Second, func() (bool, string) {
			got := rules()
			if fmt.Sprint(got) == fmt.Sprint(rulesBefore) {
				return true, ""
			}
			slices, _, _ := m.kubectl("--context=kplex-a", "get", "endpointslices,pods", "-o", "wide")
			nft, _ := netlab.Command(netlab.Path(n.netns), "nft", "list", "map", "ip", "kube-proxy", "no-endpoint-services").CombinedOutput()
			return false, fmt.Sprintf("rules on node-1 before the restart:\n%v\nafter:\n%v\na's slices and pods:\n%s\nno-endpoint-services:\n%s", rulesBefore, got, slices, nft)
		})
		// host-local's store holds exactly the IPs of node-1's pods.
		store := filepath.Join(n.rootDir, "cni", "networks", cni.NetworkName)
		entries, err := os.ReadDir(store)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "10.244.") {
				stored = append(stored, e.Name())
			}
		}
		var running []string
		for _, tn := range []string{"a", "b"} {
			out := m.must(m.kubectl("--context=kplex-"+tn, "get", "pods", "--field-selector=spec.nodeName="+n.name+",status.phase=Running", "-o", "jsonpath={.items[*].status.podIP}"))
			running = append(running, strings.Fields(out)...)
		}
		slices.Sort(stored)
		slices.Sort(running)
		if !slices.Equal(stored, running) {
			t.Errorf("host-local's store on %s holds %v, running pods have %v", n.name, stored, running)
		}
	})
}

// apply applies a manifest in a tenant, from the control plane's namespace.
func (m *machine) apply(tenant, manifest string) {
	m.t.Helper()
	if out, err := m.tryApply(tenant, manifest); err != nil {
		m.t.Fatalf("apply in %s: %v: %s", tenant, err, out)
	}
}

// tryApply is apply that returns kubectl's output and error.
func (m *machine) tryApply(tenant, manifest string) (string, error) {
	args := []string{"kubectl", "--context=kplex-" + tenant, "apply", "-f", "-"}
	if m.netns != "" {
		args = append([]string{"ip", "netns", "exec", m.netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+m.kubeconfig)
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// eventually retries check every second until it holds or within is over,
// then fails the test with what check last said.
func eventually(t *testing.T, within time.Duration, check func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(last)
		}
		time.Sleep(time.Second)
	}
}
