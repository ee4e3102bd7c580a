package nodeagent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/securitycontext"

	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// scPod is a pod of one container, app, changed by each of mut.
func scPod(mut ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "kplex.local/busybox:1.35"}}},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func podSC(p *v1.Pod) *v1.PodSecurityContext {
	if p.Spec.SecurityContext == nil {
		p.Spec.SecurityContext = &v1.PodSecurityContext{}
	}
	return p.Spec.SecurityContext
}

func appSC(p *v1.Pod) *v1.SecurityContext {
	c := &p.Spec.Containers[0]
	if c.SecurityContext == nil {
		c.SecurityContext = &v1.SecurityContext{}
	}
	return c.SecurityContext
}

// defaultContainerSecurity is what a container without settings gets,
// from an image without a user: the kubelet's defaults.
func defaultContainerSecurity() *runtimeapi.LinuxContainerSecurityContext {
	return &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
		RunAsUser:        &runtimeapi.Int64Value{Value: 0},
		MaskedPaths:      securitycontext.ConvertToRuntimeMaskedPaths(nil),
		ReadonlyPaths:    []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
	}
}

type containerSecurityCase struct {
	name     string
	pod      []func(*v1.Pod)
	uid      *int64 // the image's; root when neither this nor username is set
	username string
	want     func(*runtimeapi.LinuxContainerSecurityContext) // changes the default
	// differsFrom is a pod whose container does not get want, when the
	// plain pod's does (the case undoes a pod-level setting).
	differsFrom []func(*v1.Pod)
}

func containerSecurityCases() []containerSecurityCase {
	localhost := runtimeapi.SecurityProfile_Localhost
	return []containerSecurityCase{
		{name: "pod runAsUser", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).RunAsUser = new(int64(1000)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser.Value = 1000 }},
		{name: "container runAsUser over the pod's", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).RunAsUser = new(int64(1000)); appSC(p).RunAsUser = new(int64(2000)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser.Value = 2000 }},
		{name: "image uid when no runAsUser", uid: new(int64(1001)),
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser.Value = 1001 }},
		{name: "image user name when no runAsUser", uid: nil, username: "nobody",
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser, w.RunAsUsername = nil, "nobody" }},
		{name: "runAsUser over the image's user", uid: new(int64(1001)), pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).RunAsUser = new(int64(7)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser.Value = 7 }},
		{name: "pod runAsGroup", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).RunAsGroup = new(int64(3000)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsGroup = &runtimeapi.Int64Value{Value: 3000} }},
		{name: "container runAsGroup over the pod's", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).RunAsGroup = new(int64(3000)); appSC(p).RunAsGroup = new(int64(4000)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsGroup = &runtimeapi.Int64Value{Value: 4000} }},
		{name: "runAsNonRoot with a non-root runAsUser", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).RunAsNonRoot = new(true); podSC(p).RunAsUser = new(int64(1000)) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.RunAsUser.Value = 1000 }},
		{name: "fsGroup, then supplementalGroups", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).FSGroup = new(int64(2000)); podSC(p).SupplementalGroups = []int64{5, 6} }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.SupplementalGroups = []int64{2000, 5, 6} }},
		{name: "supplementalGroupsPolicy Strict", pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).SupplementalGroupsPolicy = new(v1.SupplementalGroupsPolicyStrict) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
			}},
		{name: "capabilities add and drop", pod: []func(*v1.Pod){func(p *v1.Pod) {
			appSC(p).Capabilities = &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN", "CAP_SYS_TIME"}, Drop: []v1.Capability{"ALL"}}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "CAP_SYS_TIME"}, DropCapabilities: []string{"ALL"}}
			}},
		{name: "allowPrivilegeEscalation false sets no_new_privs", pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).AllowPrivilegeEscalation = new(false) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.NoNewPrivs = true }},
		{name: "privileged", pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).Privileged = new(true) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.Privileged = true }},
		{name: "readOnlyRootFilesystem", pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).ReadOnlyRootFilesystem = new(true) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) { w.ReadonlyRootfs = true }},
		{name: "procMount Unmasked", pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).ProcMount = new(v1.UnmaskedProcMount) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.MaskedPaths, w.ReadonlyPaths = []string{}, []string{}
			}},
		{name: "pod seccomp RuntimeDefault", pod: []func(*v1.Pod){func(p *v1.Pod) {
			podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Seccomp.ProfileType = runtimeapi.SecurityProfile_RuntimeDefault
			}},
		{name: "container seccomp Localhost over the pod's", pod: []func(*v1.Pod){func(p *v1.Pod) {
			podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
			appSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("profiles/audit.json")}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Seccomp = &runtimeapi.SecurityProfile{ProfileType: localhost, LocalhostRef: "/seccomp/profiles/audit.json"}
			}},
		{name: "container seccomp Unconfined over the pod's RuntimeDefault", pod: []func(*v1.Pod){func(p *v1.Pod) {
			podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
			appSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}
		}},
			want: func(*runtimeapi.LinuxContainerSecurityContext) {},
			differsFrom: []func(*v1.Pod){func(p *v1.Pod) {
				podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
			}}},
		{name: "pod AppArmor RuntimeDefault", pod: []func(*v1.Pod){func(p *v1.Pod) {
			podSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Apparmor, w.ApparmorProfile = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "runtime/default"
			}},
		{name: "container AppArmor Localhost", pod: []func(*v1.Pod){func(p *v1.Pod) {
			appSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("k8s-deny-write")}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Apparmor, w.ApparmorProfile = &runtimeapi.SecurityProfile{ProfileType: localhost, LocalhostRef: "k8s-deny-write"}, "localhost/k8s-deny-write"
			}},
		{name: "AppArmor of the deprecated annotation", pod: []func(*v1.Pod){func(p *v1.Pod) {
			p.Annotations = map[string]string{v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "app": "runtime/default"}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.Apparmor, w.ApparmorProfile = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "runtime/default"
			}},
		{name: "container seLinuxOptions over the pod's", pod: []func(*v1.Pod){func(p *v1.Pod) {
			podSC(p).SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c1,c2"}
			appSC(p).SELinuxOptions = &v1.SELinuxOptions{Type: "container_t", Level: "s0:c3,c4"}
		}},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "container_t", Level: "s0:c3,c4"}
			}},
		{name: "hostPID", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.HostPID = true }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
			}},
		{name: "shareProcessNamespace", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.ShareProcessNamespace = new(true) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			}},
		{name: "hostPID over shareProcessNamespace", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.HostPID = true; p.Spec.ShareProcessNamespace = new(true) }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
			}},
		{name: "hostIPC", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.HostIPC = true }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
			}},
		{name: "hostNetwork", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.HostNetwork = true }},
			want: func(w *runtimeapi.LinuxContainerSecurityContext) {
				w.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			}},
	}
}

func (tc containerSecurityCase) convert() (*runtimeapi.LinuxContainerSecurityContext, error) {
	pod := scPod(tc.pod...)
	uid := tc.uid
	if uid == nil && tc.username == "" {
		uid = new(int64(0))
	}
	return containerSecurity(pod, &pod.Spec.Containers[0], namespaceOptions(pod, false), "/seccomp", uid, tc.username)
}

func (tc containerSecurityCase) expected() *runtimeapi.LinuxContainerSecurityContext {
	want := defaultContainerSecurity()
	tc.want(want)
	return want
}

func TestContainerSecurity(t *testing.T) {
	for _, tc := range containerSecurityCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.convert()
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.expected(); !proto.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", prototext.Format(got), prototext.Format(want))
			}
		})
	}
}

// Each case expects something a container without its settings does not
// get: were the agent to ignore the setting, the case would fail.
func TestContainerSecurityCasesCanFail(t *testing.T) {
	plain := scPod()
	got, err := containerSecurity(plain, &plain.Spec.Containers[0], namespaceOptions(plain, false), "/seccomp", new(int64(0)), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultContainerSecurity(); !proto.Equal(got, want) {
		t.Fatalf("a container without settings gets\n%s\nwant the kubelet's defaults\n%s", prototext.Format(got), prototext.Format(want))
	}
	if !slices.Contains(got.MaskedPaths, "/proc/kcore") || !slices.Contains(got.ReadonlyPaths, "/proc/sys") {
		t.Errorf("default masked paths %v, readonly paths %v: want /proc/kcore masked and /proc/sys read-only", got.MaskedPaths, got.ReadonlyPaths)
	}
	for _, tc := range containerSecurityCases() {
		other := got
		if tc.differsFrom != nil {
			pod := scPod(tc.differsFrom...)
			if other, err = containerSecurity(pod, &pod.Spec.Containers[0], namespaceOptions(pod, false), "/seccomp", new(int64(0)), ""); err != nil {
				t.Fatal(err)
			}
		}
		if proto.Equal(other, tc.expected()) {
			t.Errorf("case %q expects what a container without its settings gets: it cannot fail", tc.name)
		}
	}
}

func TestContainerSecurityErrors(t *testing.T) {
	for name, mut := range map[string]func(*v1.Pod){
		"seccomp Localhost without a profile":  func(p *v1.Pod) { appSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost} },
		"AppArmor Localhost without a profile": func(p *v1.Pod) { appSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost} },
		"unknown supplementalGroupsPolicy":     func(p *v1.Pod) { podSC(p).SupplementalGroupsPolicy = new(v1.SupplementalGroupsPolicy("Loose")) },
	} {
		pod := scPod(mut)
		if _, err := containerSecurity(pod, &pod.Spec.Containers[0], namespaceOptions(pod, false), "/seccomp", new(int64(0)), ""); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSandboxLinuxConfig(t *testing.T) {
	plainNS := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	defaults := func() *runtimeapi.LinuxPodSandboxConfig {
		return &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: proto.Clone(plainNS).(*runtimeapi.NamespaceOption),
			Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		}}
	}
	for _, tc := range []struct {
		name    string
		pod     func(*v1.Pod)
		seLinux bool
		want    func(*runtimeapi.LinuxPodSandboxConfig)
	}{
		{name: "user, group and groups of the pod", pod: func(p *v1.Pod) {
			sc := podSC(p)
			sc.RunAsUser, sc.RunAsGroup, sc.FSGroup, sc.SupplementalGroups = new(int64(1000)), new(int64(3000)), new(int64(2000)), []int64{7}
			appSC(p).RunAsUser = new(int64(5)) // the container's is not the sandbox's
		}, want: func(w *runtimeapi.LinuxPodSandboxConfig) {
			sc := w.SecurityContext
			sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups = &runtimeapi.Int64Value{Value: 1000}, &runtimeapi.Int64Value{Value: 3000}, []int64{2000, 7}
		}},
		{name: "privileged when an init container is", pod: func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "init", SecurityContext: &v1.SecurityContext{Privileged: new(true)}}}
		}, want: func(w *runtimeapi.LinuxPodSandboxConfig) { w.SecurityContext.Privileged = true }},
		{name: "sysctls", pod: func(p *v1.Pod) {
			podSC(p).Sysctls = []v1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}, {Name: "kernel.shm_rmid_forced", Value: "1"}}
		}, want: func(w *runtimeapi.LinuxPodSandboxConfig) {
			w.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1"}
		}},
		{name: "hostPID, hostIPC and hostNetwork", pod: func(p *v1.Pod) { p.Spec.HostPID, p.Spec.HostIPC, p.Spec.HostNetwork = true, true, true },
			want: func(w *runtimeapi.LinuxPodSandboxConfig) {
				w.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}
			}},
		{name: "shareProcessNamespace", pod: func(p *v1.Pod) { p.Spec.ShareProcessNamespace = new(true) },
			want: func(w *runtimeapi.LinuxPodSandboxConfig) {
				w.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			}},
		{name: "seLinuxOptions on an SELinux node", seLinux: true, pod: func(p *v1.Pod) { podSC(p).SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c1,c2"} },
			want: func(w *runtimeapi.LinuxPodSandboxConfig) {
				w.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Level: "s0:c1,c2"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := scPod(tc.pod)
			got := sandboxLinuxConfig(pod, namespaceOptions(pod, false), tc.seLinux)
			want := defaults()
			tc.want(want)
			if !proto.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", prototext.Format(got), prototext.Format(want))
			}
			// Can fail: a pod without the case's settings gets the defaults.
			plain := scPod()
			if proto.Equal(sandboxLinuxConfig(plain, namespaceOptions(plain, false), tc.seLinux), want) {
				t.Errorf("a pod without the case's settings gets what the case wants")
			}
		})
	}
}

func TestNamespaceOptionsOfNodeNetworkOnly(t *testing.T) {
	if got := namespaceOptions(scPod(), true).Network; got != runtimeapi.NamespaceMode_NODE {
		t.Errorf("network %v on a node without a pod network, want NODE", got)
	}
}

func TestVerifyRunAsNonRoot(t *testing.T) {
	nonRoot := func(p *v1.Pod) { podSC(p).RunAsNonRoot = new(true) }
	for _, tc := range []struct {
		name     string
		pod      []func(*v1.Pod)
		uid      *int64
		username string
		want     string // in the error; "" for none
	}{
		{name: "image runs as root", pod: []func(*v1.Pod){nonRoot}, uid: new(int64(0)),
			want: `container has runAsNonRoot and image will run as root (pod: "web_default(uid-1)", container: app)`},
		{name: "runAsUser 0", pod: []func(*v1.Pod){nonRoot, func(p *v1.Pod) { appSC(p).RunAsUser = new(int64(0)) }}, uid: new(int64(1000)),
			want: `container's runAsUser breaks non-root policy (pod: "web_default(uid-1)", container: app)`},
		{name: "image user is a name", pod: []func(*v1.Pod){nonRoot}, username: "app",
			want: "image has non-numeric user (app), cannot verify user is non-root"},
		{name: "image uid out of range", pod: []func(*v1.Pod){nonRoot}, uid: new(int64(1 << 40)), want: "image has an invalid user id"},
		{name: "container's runAsNonRoot over the pod's", pod: []func(*v1.Pod){func(p *v1.Pod) { appSC(p).RunAsNonRoot = new(true) }}, uid: new(int64(0)),
			want: "image will run as root"},
		{name: "image runs as 1000", pod: []func(*v1.Pod){nonRoot}, uid: new(int64(1000))},
		{name: "runAsUser 1000 over a root image", pod: []func(*v1.Pod){nonRoot, func(p *v1.Pod) { podSC(p).RunAsUser = new(int64(1000)) }}, uid: new(int64(0))},
		{name: "container allows root", pod: []func(*v1.Pod){nonRoot, func(p *v1.Pod) { appSC(p).RunAsNonRoot = new(false) }}, uid: new(int64(0))},
		{name: "no runAsNonRoot", uid: new(int64(0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := scPod(tc.pod...)
			err := verifyRunAsNonRoot(pod, &pod.Spec.Containers[0], tc.uid, tc.username)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// testSecurity is a node with SELinux and AppArmor, whose only seccomp
// profile is /seccomp/audit.json and only AppArmor profile k8s-deny-write.
func testSecurity(mut ...func(*nodeSecurity)) *nodeSecurity {
	s := &nodeSecurity{
		seccompRoot:    "/seccomp",
		sysctls:        newSysctlAllowlist(klog.Background(), nil, []string{"kernel.msgmax", "net.core.*", "user.max_user_namespaces"}),
		seLinux:        true,
		appArmorLoaded: func(name string) (bool, error) { return name == "k8s-deny-write", nil },
		fileExists:     func(p string) bool { return p == "/seccomp/audit.json" },
		strictGroups:   func(context.Context) bool { return true },
	}
	for _, m := range mut {
		m(s)
	}
	return s
}

func TestRefuseContainer(t *testing.T) {
	noSELinux := func(s *nodeSecurity) { s.seLinux = false }
	for _, tc := range []struct {
		name string
		pod  func(*v1.Pod)
		node []func(*nodeSecurity)
		want string // in the refusal; "" for none
	}{
		{name: "nothing asked", pod: func(*v1.Pod) {}},
		{name: "hostUsers false", pod: func(p *v1.Pod) { p.Spec.HostUsers = new(false) }, want: "hostUsers: false"},
		{name: "procMount Unmasked", pod: func(p *v1.Pod) { appSC(p).ProcMount = new(v1.UnmaskedProcMount) }, want: "procMount: Unmasked"},
		{name: "procMount Default", pod: func(p *v1.Pod) { appSC(p).ProcMount = new(v1.DefaultProcMount) }},
		{name: "no_new_privs and privileged", pod: func(p *v1.Pod) { appSC(p).AllowPrivilegeEscalation, appSC(p).Privileged = new(false), new(true) },
			want: "allowPrivilegeEscalation to false and privileged"},
		{name: "no_new_privs and CAP_SYS_ADMIN", pod: func(p *v1.Pod) {
			appSC(p).AllowPrivilegeEscalation = new(false)
			appSC(p).Capabilities = &v1.Capabilities{Add: []v1.Capability{"CAP_SYS_ADMIN"}}
		}, want: "capabilities.add CAP_SYS_ADMIN"},
		{name: "privileged", pod: func(p *v1.Pod) { appSC(p).Privileged = new(true) }},
		{name: "seLinuxOptions without SELinux", node: []func(*nodeSecurity){noSELinux},
			pod: func(p *v1.Pod) { podSC(p).SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c1,c2"} }, want: "SELinux is not enabled"},
		{name: "seLinuxOptions with SELinux", pod: func(p *v1.Pod) { podSC(p).SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c1,c2"} }},
		{name: "empty seLinuxOptions without SELinux", node: []func(*nodeSecurity){noSELinux},
			pod: func(p *v1.Pod) { podSC(p).SELinuxOptions = &v1.SELinuxOptions{} }},
		{name: "windowsOptions runAsUserName", pod: func(p *v1.Pod) {
			appSC(p).WindowsOptions = &v1.WindowsSecurityContextOptions{RunAsUserName: new("ContainerUser")}
		}, want: "windowsOptions"},
		{name: "windowsOptions hostProcess", pod: func(p *v1.Pod) {
			podSC(p).WindowsOptions = &v1.WindowsSecurityContextOptions{HostProcess: new(true)}
		}, want: "windowsOptions"},
		{name: "windowsOptions gMSA only", pod: func(p *v1.Pod) {
			podSC(p).WindowsOptions = &v1.WindowsSecurityContextOptions{GMSACredentialSpecName: new("spec")}
		}},
		{name: "seccomp profile missing", pod: func(p *v1.Pod) {
			podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("other.json")}
		}, want: "seccomp profile /seccomp/other.json not found"},
		{name: "seccomp profile present", pod: func(p *v1.Pod) {
			podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("audit.json")}
		}},
		{name: "seccomp profile outside the root", pod: func(p *v1.Pod) {
			appSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("../etc/audit.json")}
		}, want: "not a path within the profile root"},
		{name: "AppArmor profile not loaded", pod: func(p *v1.Pod) {
			appSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("other")}
		}, want: `AppArmor profile "other" is not loaded`},
		{name: "AppArmor profile loaded", pod: func(p *v1.Pod) {
			appSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("k8s-deny-write")}
		}},
		{name: "AppArmor profiles unreadable", node: []func(*nodeSecurity){func(s *nodeSecurity) {
			s.appArmorLoaded = func(string) (bool, error) { return false, errors.New("permission denied") }
		}}, pod: func(p *v1.Pod) {
			appSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("k8s-deny-write")}
		}, want: "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := scPod(tc.pod)
			err := testSecurity(tc.node...).refuseContainer(pod, &pod.Spec.Containers[0])
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("refusal %v, want one with %q", err, tc.want)
			}
		})
	}
}

type fakeAppArmor struct{ err error }

func (f fakeAppArmor) Validate(pod *v1.Pod) error {
	if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.AppArmorProfile != nil {
		return f.err
	}
	return nil
}
func (f fakeAppArmor) ValidateHost() error { return f.err }

func TestRefusePod(t *testing.T) {
	sysctls := func(names ...string) func(*v1.Pod) {
		return func(p *v1.Pod) {
			for _, n := range names {
				podSC(p).Sysctls = append(podSC(p).Sysctls, v1.Sysctl{Name: n, Value: "1"})
			}
		}
	}
	for _, tc := range []struct {
		name       string
		pod        []func(*v1.Pod)
		node       []func(*nodeSecurity)
		nodeNet    bool // the node has no pod network
		wantReason string
		wantMsg    string
	}{
		{name: "nothing asked"},
		{name: "a Windows pod", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Windows} }}, wantReason: "PodOSNotSupported"},
		{name: "a Linux pod", pod: []func(*v1.Pod){func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Linux} }}},
		{name: "safe sysctls", pod: []func(*v1.Pod){sysctls("kernel.shm_rmid_forced", "net/ipv4/ip_local_port_range")}},
		{name: "unsafe sysctl", pod: []func(*v1.Pod){sysctls("kernel.shm_rmid_forced", "kernel.sem")},
			wantReason: "SysctlForbidden", wantMsg: `forbidden sysctl: "kernel.sem" not allowlisted`},
		{name: "allowed unsafe sysctls", pod: []func(*v1.Pod){sysctls("kernel.msgmax", "net.core.somaxconn")}},
		{name: "net sysctl with hostNetwork", pod: []func(*v1.Pod){sysctls("net.ipv4.ip_local_port_range"), func(p *v1.Pod) { p.Spec.HostNetwork = true }},
			wantReason: "SysctlForbidden", wantMsg: "not allowed with host Net enabled"},
		{name: "net sysctl on a node without a pod network", pod: []func(*v1.Pod){sysctls("net.ipv4.ip_local_port_range")}, nodeNet: true,
			wantReason: "SysctlForbidden", wantMsg: "not allowed with host Net enabled"},
		{name: "IPC sysctl with hostIPC", pod: []func(*v1.Pod){sysctls("kernel.shm_rmid_forced"), func(p *v1.Pod) { p.Spec.HostIPC = true }},
			wantReason: "SysctlForbidden", wantMsg: "not allowed with host IPC enabled"},
		{name: "user sysctl without a user namespace", pod: []func(*v1.Pod){sysctls("user.max_user_namespaces")},
			wantReason: "SysctlForbidden", wantMsg: "not allowed with host User enabled"},
		{name: "AppArmor on a node without it", node: []func(*nodeSecurity){func(s *nodeSecurity) { s.appArmor = fakeAppArmor{errors.New("AppArmor is not enabled on the host")} }},
			pod: []func(*v1.Pod){func(p *v1.Pod) {
				podSC(p).AppArmorProfile = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
			}},
			wantReason: "AppArmor", wantMsg: "Cannot enforce AppArmor: AppArmor is not enabled on the host"},
		{name: "Strict groups on a runtime without it", node: []func(*nodeSecurity){func(s *nodeSecurity) { s.strictGroups = func(context.Context) bool { return false } }},
			pod:        []func(*v1.Pod){func(p *v1.Pod) { podSC(p).SupplementalGroupsPolicy = new(v1.SupplementalGroupsPolicyStrict) }},
			wantReason: "SupplementalGroupsPolicyNotSupported"},
		{name: "Strict groups on a runtime with it",
			pod: []func(*v1.Pod){func(p *v1.Pod) { podSC(p).SupplementalGroupsPolicy = new(v1.SupplementalGroupsPolicyStrict) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := scPod(tc.pod...)
			reason, msg := testSecurity(tc.node...).refusePod(context.Background(), pod, namespaceOptions(pod, tc.nodeNet))
			if reason != tc.wantReason || !strings.Contains(msg, tc.wantMsg) || (reason == "") != (msg == "") {
				t.Errorf("refused for %q (%q), want %q (with %q)", reason, msg, tc.wantReason, tc.wantMsg)
			}
		})
	}
}

func TestSysctlPatterns(t *testing.T) {
	for p, ok := range map[string]bool{"kernel.msgmax": true, "net.core.*": true, "kernel.shm*": true, "kernel.panic": false, "net.*.x*": false, "": false} {
		if _, _, _, err := parseSysctlPattern(p); (err == nil) != ok {
			t.Errorf("pattern %q: error %v, want valid %v", p, err, ok)
		}
	}
	cfg := NewConfig()
	cfg.AllowedUnsafeSysctls = []string{"kernel.panic"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--allowed-unsafe-sysctls") {
		t.Errorf("Validate with a non-namespaced unsafe sysctl: %v", err)
	}
}

// rootImages reports every image present, running as the user uid.
type rootImages struct {
	simulated.Images
	uid int64
}

func (i rootImages) ImageStatus(_ context.Context, image *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sim:" + image.GetImage(), Uid: &runtimeapi.Int64Value{Value: i.uid}}}, nil
}

// securityWorker is a worker of a simulated node whose images run as
// root, and whose tenant has no services, configmaps or secrets.
func securityWorker(t *testing.T, pod *v1.Pod) (*podWorker, *simulated.Runtime) {
	t.Helper()
	rt := simulated.New()
	return workerOn(t, pod, Runtime{Service: rt, Images: rootImages{uid: 0}, HostNetworkOnly: true, Scheme: simulated.RuntimeName}), rt
}

// workerOn is a worker of pod on a node of runtime rt without a pod
// network, whose tenant has no services, configmaps or secrets.
func workerOn(t *testing.T, pod *v1.Pod, rt Runtime) *podWorker {
	t.Helper()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/services") {
			_, _ = w.Write([]byte(`{"kind":"ServiceList","apiVersion":"v1","items":[]}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(api.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.RootDir = t.TempDir()
	a := newAgent(cfg, "node-1", client, client.CoreV1().RESTClient(), rt, nil, nil)
	return newPodWorker(a, "a", pod)
}

// A container that must not run as root, of an image that runs as root,
// is not created: it waits, CreateContainerConfigError, with the kubelet's
// message. With a runAsUser it runs, as that user.
func TestRunAsNonRootRefusedAtStart(t *testing.T) {
	ctx := context.Background()
	pod := scPod(func(p *v1.Pod) { podSC(p).RunAsNonRoot = new(true) })
	w, rt := securityWorker(t, pod)
	if err := os.MkdirAll(w.logDir(pod), 0o755); err != nil {
		t.Fatal(err)
	}
	sandbox, err := rt.RunPodSandbox(ctx, w.sandboxConfig(pod, 0), "")
	if err != nil {
		t.Fatal(err)
	}
	if w.start(ctx, pod, &pod.Spec.Containers[0], sandbox, 0, false) {
		t.Error("start acted on a container it must refuse")
	}
	if cs, _ := rt.ListContainers(ctx, nil); len(cs) != 0 {
		t.Fatalf("the runtime has %d containers, want none", len(cs))
	}
	obs, err := w.observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := w.computeStatus(pod, obs, false)
	wait := st.ContainerStatuses[0].State.Waiting
	want := `container has runAsNonRoot and image will run as root (pod: "web_default(uid-1)", container: app)`
	if wait == nil || wait.Reason != "CreateContainerConfigError" || wait.Message != want {
		t.Fatalf("container state %+v, want waiting CreateContainerConfigError: %s", st.ContainerStatuses[0].State, want)
	}
	if st.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}

	// Can fail: the same pod with a non-root user starts.
	podSC(pod).RunAsUser = new(int64(1000))
	appSC(pod).AllowPrivilegeEscalation = new(false)
	if !w.start(ctx, pod, &pod.Spec.Containers[0], sandbox, 0, false) {
		t.Fatalf("start did not act: waiting %+v", w.waiting["app"])
	}
	cs, _ := rt.ListContainers(ctx, nil)
	if len(cs) != 1 {
		t.Fatalf("the runtime has %d containers, want 1", len(cs))
	}
	sc := rt.ContainerConfig(cs[0].Id).GetLinux().GetSecurityContext()
	if sc.GetRunAsUser().GetValue() != 1000 || !sc.NoNewPrivs || sc.NamespaceOptions.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		t.Errorf("container created with\n%s\nwant runAsUser 1000, no_new_privs, the node's network (the node has no pod network)", prototext.Format(sc))
	}
}

func TestSeccompProfileRootFlag(t *testing.T) {
	cfg := NewConfig()
	if cfg.SeccompProfileRoot != "/var/lib/kubelet/seccomp" {
		t.Errorf("default --seccomp-profile-root %q, want the kubelet's /var/lib/kubelet/seccomp", cfg.SeccompProfileRoot)
	}
	p, err := seccompProfile(scPod(func(p *v1.Pod) {
		podSC(p).SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("a/b.json")}
	}), &v1.Container{}, cfg.SeccompProfileRoot)
	if err != nil || p.LocalhostRef != filepath.Join(cfg.SeccompProfileRoot, "a/b.json") {
		t.Errorf("Localhost profile %v, %v", p, err)
	}
}
