package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// hostilePod is a pod manifest of busybox sleeping, with spec lines added
// under spec and container lines under its one container.
func hostilePod(name string, spec, container []string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  automountServiceAccountToken: false
%s  containers:
  - name: c
    image: %s
    imagePullPolicy: Never
    command: [sleep, "3600"]
%s`, name, indent("  ", spec), images.Busybox, indent("    ", container))
}

func indent(prefix string, lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// TestE2EHostileTenants: what a tenant's admin tries against a shared node
// and its neighbours, each attempt with its refusal. Nodes join with a
// bootstrap token and run as themselves; a shared node runs tenants' pods
// under gVisor; the operator's trusted tenant, on its own node, runs what
// the others may not.
func TestE2EHostileTenants(t *testing.T) {
	m := newMachine(t)
	if err := containerd.Available(); err != nil {
		t.Fatalf("containerd is needed (.ci/run installs it): %v", err)
	}
	ctrd, err := containerd.Start(t.Context(), t.TempDir(), containerd.WithRunsc())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrd.Stop() })
	m.up()
	m.must(m.kplex("create", "cluster", "mallory"))
	m.must(m.kplex("create", "cluster", "strict", "--pod-security=restricted"))
	m.must(m.kplex("create", "cluster", "trusted", "--pod-security=privileged"))
	clusters := m.must(m.kplex("get", "clusters"))
	for name, level := range map[string]string{"mallory": "baseline", "strict": "restricted", "trusted": "privileged"} {
		if !regexp.MustCompile(`(?m)^` + name + `\s+\S+\s+` + level + `\s`).MatchString(clusters) {
			t.Errorf("kplex get clusters does not show %s at %s:\n%s", name, level, clusters)
		}
	}
	m.apply("root", `apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: tenant-trusted}
spec: {mode: dedicated, tenants: [trusted]}
`)

	// Nodes join with a bootstrap token, as kubelets do: no admin
	// credential on them.
	token := filepath.Join(t.TempDir(), "bootstrap.kubeconfig")
	m.must(m.kplex("create", "node-token", "--ttl=10m", "-o", token))
	join := func(name string, extra ...string) (*agent, string) {
		own := filepath.Join(t.TempDir(), "node.kubeconfig")
		a := m.startAgent(name, ctrd.Endpoint, append([]string{"--bootstrap-kubeconfig=" + token, "--kubeconfig=" + own}, extra...)...)
		m.until(90*time.Second, "node "+name+" Ready", equals("True"), "--context=kplex-root", "get", "node", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return a, own
	}
	_, sharedCreds := join("shared-1", "--runtime-handlers=runsc")
	join("trusted-1", "--tenant=trusted")
	if csrs := m.must(m.kubectl("--context=kplex-root", "get", "csr", "-o", "jsonpath={range .items[*]}{.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}")); strings.Count(csrs, "system:bootstrap:") < 2 || !strings.Contains(csrs, "Approved") {
		t.Errorf("the nodes' certificate requests: %q, want two approved requests of the bootstrap token", csrs)
	}
	for _, ctx := range []string{"mallory", "strict", "trusted"} {
		m.eventuallyWithin(30*time.Second, "default ServiceAccount", "--context=kplex-"+ctx, "get", "serviceaccount", "default")
	}

	t.Run("the floor refuses what would reach the node", func(t *testing.T) {
		for _, tc := range []struct {
			name, tenant    string
			spec, container []string
			want            string
		}{
			{"privileged", "mallory", nil, []string{"securityContext: {privileged: true}"}, `privileged (container "c" must not set securityContext.privileged=true)`},
			{"host-root", "mallory", []string{"volumes: [{name: root, hostPath: {path: /}}]"}, nil, `hostPath volumes (volume "root")`},
			{"host-pid", "mallory", []string{"hostPID: true"}, nil, "host namespaces (hostPID=true)"},
			{"host-ipc", "mallory", []string{"hostIPC: true"}, nil, "host namespaces (hostIPC=true)"},
			{"host-network", "mallory", []string{"hostNetwork: true"}, nil, "host namespaces (hostNetwork=true)"},
			{"sys-admin", "mallory", nil, []string{"securityContext: {capabilities: {add: [SYS_ADMIN]}}"}, `non-default capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)`},
			{"unconfined", "mallory", []string{"securityContext: {seccompProfile: {type: Unconfined}}"}, nil, `seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`},
			{"net-raw", "strict", nil, []string{"securityContext: {capabilities: {add: [NET_RAW]}}"}, `must not include "NET_RAW" in securityContext.capabilities.add`},
			{"as-root", "strict", []string{"securityContext: {runAsUser: 0}"}, nil, "runAsUser=0"},
		} {
			out, err := m.tryApply(tc.tenant, hostilePod(tc.name, tc.spec, tc.container))
			level := map[string]string{"mallory": "baseline", "strict": "restricted"}[tc.tenant]
			want := fmt.Sprintf(`violates PodSecurity "%s:latest" set by the management plane for tenant %s: `, level, tc.tenant)
			if err == nil || !strings.Contains(out, want) || !strings.Contains(out, tc.want) {
				t.Errorf("%s's %s pod: %v: %s\nwant a refusal containing %q and %q", tc.tenant, tc.name, err, out, want, tc.want)
			}
		}
		// procMount Unmasked needs a user namespace (hostUsers: false), with
		// which baseline allows it; the agent has none to give, so the
		// container never starts, and says why.
		m.apply("mallory", hostilePod("unmasked", []string{"nodeName: shared-1", "hostUsers: false"}, []string{"securityContext: {procMount: Unmasked}"}))
		m.until(time.Minute, "mallory's unmasked container refused", func(s string) bool {
			return strings.HasPrefix(s, "CreateContainerConfigError") && strings.Contains(s, "hostUsers: false (a user namespace) is not supported on this node")
		}, "--context=kplex-mallory", "get", "pod", "unmasked", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].state.waiting.message}")
		// A label asking for privileged changes nothing.
		m.must(m.kubectl("--context=kplex-mallory", "label", "namespace", "default", "pod-security.kubernetes.io/enforce=privileged"))
		if out, err := m.tryApply("mallory", hostilePod("privileged-again", nil, []string{"securityContext: {privileged: true}"})); err == nil {
			t.Errorf("mallory's privileged pod after labelling its namespace privileged: %s", out)
		}
	})

	t.Run("a shared node runs tenants' pods under gVisor", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "host-secret")
		if err := os.WriteFile(marker, []byte("the host's"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.apply("mallory", hostilePod("probe", []string{"nodeName: shared-1"}, nil))
		m.until(2*time.Minute, "mallory's probe Running", equals("Running"), "--context=kplex-mallory", "get", "pod", "probe", "-o", "jsonpath={.status.phase}")
		host, err := os.ReadFile("/proc/sys/kernel/osrelease")
		if err != nil {
			t.Fatal(err)
		}
		kernel := strings.TrimSpace(m.must(m.kubectl("--context=kplex-mallory", "exec", "probe", "--", "uname", "-r")))
		if kernel == strings.TrimSpace(string(host)) {
			t.Errorf("mallory's pod on a shared node sees the host's kernel %s, want gVisor's", kernel)
		}
		if dmesg := m.must(m.kubectl("--context=kplex-mallory", "exec", "probe", "--", "dmesg")); !strings.Contains(dmesg, "gVisor") {
			t.Errorf("dmesg in mallory's pod does not show gVisor: %q", dmesg)
		}
		for what, cmd := range map[string]string{
			"read the host's files through /proc/1/root": "cat /proc/1/root" + marker,
			"mount the host's disk":                      "mkdir -p /mnt/host && mount /dev/vda /mnt/host || mount /dev/sda /mnt/host",
			"see the host's processes":                   "test -d /proc/" + strconv.Itoa(os.Getpid()),
		} {
			if out, errOut, err := m.kubectl("--context=kplex-mallory", "exec", "probe", "--", "sh", "-c", cmd); err == nil {
				t.Errorf("mallory's pod could %s: %s %s", what, out, errOut)
			}
		}
		// Asking for runc by a RuntimeClass (the operator's, as node
		// runtimes are) changes nothing on a shared node.
		m.apply("root", `apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: plain}
handler: runc
`)
		m.apply("mallory", hostilePod("asks-runc", []string{"nodeName: shared-1", "runtimeClassName: plain"}, nil))
		m.until(2*time.Minute, "mallory's asks-runc Running", equals("Running"), "--context=kplex-mallory", "get", "pod", "asks-runc", "-o", "jsonpath={.status.phase}")
		if k := strings.TrimSpace(m.must(m.kubectl("--context=kplex-mallory", "exec", "asks-runc", "--", "uname", "-r"))); k == strings.TrimSpace(string(host)) {
			t.Errorf("mallory's pod asking for runc on a shared node runs on the host's kernel")
		}
	})

	t.Run("the operator's trusted tenant runs them on its own node", func(t *testing.T) {
		m.apply("trusted", hostilePod("admin", []string{"nodeName: trusted-1", "hostPID: true", "hostNetwork: true"},
			[]string{"securityContext: {privileged: true}"}))
		m.until(2*time.Minute, "trusted's admin Running", equals("Running"), "--context=kplex-trusted", "get", "pod", "admin", "-o", "jsonpath={.status.phase}")
		if _, errOut, err := m.kubectl("--context=kplex-trusted", "exec", "admin", "--", "test", "-d", "/proc/"+strconv.Itoa(os.Getpid())); err != nil {
			t.Errorf("trusted's hostPID pod does not see the host's processes: %v %s", err, errOut)
		}
		// Even on the host's network, etcd and the agents' port want a
		// certificate: plain requests get nothing.
		log, err := os.ReadFile(filepath.Join(m.dataDir, "kplex.log"))
		if err != nil {
			t.Fatal(err)
		}
		etcd := regexp.MustCompile(`clientURL="https://(127\.0\.0\.1:\d+)"`).FindSubmatch(log)
		if etcd == nil {
			t.Fatalf("no etcd client URL in kplex.log")
		}
		agentPort := m.must(m.kubectl("--context=kplex-root", "get", "node", "shared-1", "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"))
		for what, url := range map[string]string{
			"etcd":             "http://" + string(etcd[1]) + "/v3/kv/range",
			"the agent's port": "http://127.0.0.1:" + agentPort + "/pods",
		} {
			if out, _, err := m.kubectl("--context=kplex-trusted", "exec", "admin", "--", "sh", "-c", "timeout 5 wget -q -O- "+url); err == nil {
				t.Errorf("a host-network pod read %s without a certificate: %q", what, out)
			}
		}
		// The same privileged pod of mallory's, naming trusted's node, is
		// refused by the floor; on the shared node the agent would refuse
		// its host namespaces whatever the level.
		if out, err := m.tryApply("mallory", hostilePod("squat", []string{"nodeName: trusted-1"}, nil)); err == nil || !strings.Contains(out, "is not one this tenant's pods may use") {
			t.Errorf("mallory's pod naming trusted's node: %v %s", err, out)
		}
	})

	t.Run("a node's credential reads only what its pods need", func(t *testing.T) {
		m.must(m.kubectl("--context=kplex-trusted", "create", "secret", "generic", "keys", "--from-literal=k=v"))
		server := strings.TrimSpace(m.must(m.kubectl("--context=kplex-root", "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")))
		asNode := func(args ...string) (string, string, error) {
			return m.kubectl(append([]string{"--kubeconfig=" + sharedCreds}, args...)...)
		}
		_, errOut, err := asNode("--server="+server+"/clusters/trusted", "get", "secret", "keys")
		if err == nil || !strings.Contains(errOut, "Forbidden") {
			t.Errorf("shared-1's credential reading trusted's Secret: %v %s, want Forbidden", err, errOut)
		}
		_, errOut, err = asNode("label", "node", "trusted-1", "stolen=yes")
		if err == nil || !strings.Contains(errOut, "Forbidden") {
			t.Errorf("shared-1's credential labelling trusted-1: %v %s, want Forbidden", err, errOut)
		}
		if who := m.must(asNode("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")); who != "system:node:shared-1" {
			t.Errorf("shared-1's credential is %q, want system:node:shared-1", who)
		}
	})
}
