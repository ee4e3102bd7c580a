package nodeagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/component-helpers/node/util/sysctl"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/util/format"
	"k8s.io/kubernetes/pkg/security/apparmor"
	"k8s.io/kubernetes/pkg/securitycontext"
	utilkernel "k8s.io/kubernetes/pkg/util/kernel"

	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// The agent sends CRI what the kubelet would for a pod's and its
// containers' securityContext, and refuses what it cannot enforce: a pod
// that asked for isolation does not run without it.

// nodeSecurity is what this node can enforce, probed once at start as the
// kubelet does.
type nodeSecurity struct {
	seccompRoot string
	sysctls     sysctlAllowlist
	// appArmor is the kubelet's admission check of a pod's AppArmor
	// profiles against the host; nil checks nothing.
	appArmor apparmor.Validator
	// appArmorLoaded says whether the kernel holds a profile of this name.
	appArmorLoaded func(name string) (bool, error)
	// seLinux says whether the host enforces SELinux labels.
	seLinux bool
	// fileExists finds Localhost seccomp profiles.
	fileExists func(path string) bool
	// strictGroups says whether the runtime does supplementalGroupsPolicy
	// Strict (ignores the image's /etc/group).
	strictGroups func(ctx context.Context) bool
}

func newNodeSecurity(logger klog.Logger, cfg *Config, rt Runtime) *nodeSecurity {
	s := &nodeSecurity{seccompRoot: cfg.SeccompProfileRoot}
	if rt.Scheme == simulated.RuntimeName {
		// Simulated containers run nowhere: there is no host to lack a
		// feature, so only what the pod itself gets wrong is refused.
		s.sysctls = newSysctlAllowlist(logger, nil, cfg.AllowedUnsafeSysctls)
		s.seLinux = true
		s.appArmorLoaded = func(string) (bool, error) { return true, nil }
		s.fileExists = func(string) bool { return true }
		s.strictGroups = func(context.Context) bool { return true }
		return s
	}
	kernel, err := utilkernel.GetVersion()
	if err != nil {
		// As the kubelet: without the version, only the sysctls
		// namespaced in every kernel are safe.
		logger.Error(err, "Reading the kernel version")
		kernel = version.MajorMinor(0, 0)
	}
	s.sysctls = newSysctlAllowlist(logger, kernel, cfg.AllowedUnsafeSysctls)
	s.appArmor = apparmor.NewValidator()
	s.appArmorLoaded = appArmorProfileLoaded
	s.seLinux = seLinuxEnabled()
	s.fileExists = func(p string) bool { _, err := os.Stat(p); return err == nil }
	s.strictGroups = func(ctx context.Context) bool {
		st, err := rt.Service.Status(ctx, false)
		return err == nil && st.GetFeatures().GetSupplementalGroupsPolicy()
	}
	return s
}

// appArmorProfilesFile lists the profiles loaded in the kernel, one
// "name (mode)" a line.
var appArmorProfilesFile = "/sys/kernel/security/apparmor/profiles"

func appArmorProfileLoaded(name string) (bool, error) {
	f, err := os.Open(appArmorProfilesFile)
	if err != nil {
		return false, fmt.Errorf("listing AppArmor profiles: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if loaded, _, _ := strings.Cut(sc.Text(), " ("); loaded == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

// seLinuxEnabled says whether selinuxfs is mounted, as it is when the
// kernel enforces or audits labels.
func seLinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// namespaceOptions are the pod's namespaces, the same for its sandbox and
// each of its containers: the node's network when the pod (or the node)
// has no other, and the node's or the pod's PID and IPC namespaces as the
// pod asks.
func namespaceOptions(pod *v1.Pod, hostNetworkOnly bool) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork || hostNetworkOnly {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

// sandboxLinuxConfig is the Linux part of the pod's sandbox, as the
// kubelet's: the pod-level user, groups and sysctls; privileged when a
// container is (the runtime runs privileged containers only in privileged
// sandboxes); the runtime's default seccomp profile for the pause process.
func sandboxLinuxConfig(pod *v1.Pod, ns *runtimeapi.NamespaceOption, seLinux bool) *runtimeapi.LinuxPodSandboxConfig {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: ns,
		Privileged:       hasPrivilegedContainer(pod),
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	out := &runtimeapi.LinuxPodSandboxConfig{SecurityContext: sc}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return out
	}
	sc.RunAsUser = int64Value(psc.RunAsUser)
	sc.RunAsGroup = int64Value(psc.RunAsGroup)
	sc.SupplementalGroups = supplementalGroups(psc)
	// An unknown policy fails each container (containerSecurity): the
	// sandbox runs only the pause process.
	sc.SupplementalGroupsPolicy, _ = groupsPolicy(psc)
	if seLinux {
		sc.SelinuxOptions = seLinuxOption(psc.SELinuxOptions)
	}
	if len(psc.Sysctls) > 0 {
		out.Sysctls = map[string]string{}
		for _, s := range psc.Sysctls {
			out.Sysctls[s.Name] = s.Value
		}
	}
	return out
}

func hasPrivilegedContainer(pod *v1.Pod) bool {
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
				return true
			}
		}
	}
	return false
}

// containerSecurity is the CRI security context of c: the container's
// settings over the pod's, as the kubelet merges them. uid or username is
// the image's user, which runs when neither sets runAsUser: naming it
// keeps runAsGroup working (the runtime takes a group only with a user).
func containerSecurity(pod *v1.Pod, c *v1.Container, ns *runtimeapi.NamespaceOption, seccompRoot string, uid *int64, username string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	eff := securitycontext.DetermineEffectiveSecurityContext(pod, c)
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: ns,
		Capabilities:     capabilities(eff.Capabilities),
		Privileged:       eff.Privileged != nil && *eff.Privileged,
		ReadonlyRootfs:   eff.ReadOnlyRootFilesystem != nil && *eff.ReadOnlyRootFilesystem,
		RunAsUser:        int64Value(eff.RunAsUser),
		RunAsGroup:       int64Value(eff.RunAsGroup),
		SelinuxOptions:   seLinuxOption(eff.SELinuxOptions),
		NoNewPrivs:       securitycontext.AddNoNewPrivileges(eff),
		MaskedPaths:      securitycontext.ConvertToRuntimeMaskedPaths(eff.ProcMount),
		ReadonlyPaths:    securitycontext.ConvertToRuntimeReadonlyPaths(eff.ProcMount),
	}
	if out.RunAsUser == nil {
		out.RunAsUser, out.RunAsUsername = int64Value(uid), username
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		out.SupplementalGroups = supplementalGroups(psc)
		policy, err := groupsPolicy(psc)
		if err != nil {
			return nil, err
		}
		out.SupplementalGroupsPolicy = policy
	}
	var err error
	if out.Seccomp, err = seccompProfile(pod, c, seccompRoot); err != nil {
		return nil, err
	}
	if out.Apparmor, out.ApparmorProfile, err = appArmorProfile(pod, c); err != nil {
		return nil, err
	}
	return out, nil
}

func int64Value(v *int64) *runtimeapi.Int64Value {
	if v == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *v}
}

// capabilities passes add and drop as given: the runtime starts from its
// default set, and reads "ALL" and names with or without CAP_.
func capabilities(c *v1.Capabilities) *runtimeapi.Capability {
	if c == nil {
		return nil
	}
	out := &runtimeapi.Capability{}
	for _, a := range c.Add {
		out.AddCapabilities = append(out.AddCapabilities, string(a))
	}
	for _, d := range c.Drop {
		out.DropCapabilities = append(out.DropCapabilities, string(d))
	}
	return out
}

func seLinuxOption(o *v1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// supplementalGroups are fsGroup, then supplementalGroups: the kubelet's
// order.
func supplementalGroups(psc *v1.PodSecurityContext) []int64 {
	var out []int64
	if psc.FSGroup != nil {
		out = append(out, *psc.FSGroup)
	}
	return append(out, psc.SupplementalGroups...)
}

func groupsPolicy(psc *v1.PodSecurityContext) (runtimeapi.SupplementalGroupsPolicy, error) {
	if psc.SupplementalGroupsPolicy == nil {
		return runtimeapi.SupplementalGroupsPolicy_Merge, nil
	}
	v, ok := runtimeapi.SupplementalGroupsPolicy_value[string(*psc.SupplementalGroupsPolicy)]
	if !ok {
		return 0, fmt.Errorf("unsupported supplementalGroupsPolicy %q", *psc.SupplementalGroupsPolicy)
	}
	return runtimeapi.SupplementalGroupsPolicy(v), nil
}

// seccompProfile is the container's profile, else the pod's, else none
// (Unconfined), as the kubelet without --seccomp-default. A Localhost
// profile is a file under the profile root.
func seccompProfile(pod *v1.Pod, c *v1.Container, root string) (*runtimeapi.SecurityProfile, error) {
	var p *v1.SeccompProfile
	if psc := pod.Spec.SecurityContext; psc != nil {
		p = psc.SeccompProfile
	}
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		p = c.SecurityContext.SeccompProfile
	}
	switch {
	case p == nil || p.Type == v1.SeccompProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case p.Type == v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case p.Type == v1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, errors.New("seccompProfile of type Localhost needs localhostProfile")
		}
		if !filepath.IsLocal(*p.LocalhostProfile) {
			return nil, fmt.Errorf("seccompProfile.localhostProfile %q is not a path within the profile root", *p.LocalhostProfile)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: filepath.Join(root, *p.LocalhostProfile)}, nil
	}
	return nil, fmt.Errorf("unknown seccompProfile type %q", p.Type)
}

// appArmorProfile is the container's profile (field, then the deprecated
// annotation, then the pod's field), in both of CRI's forms: runtimes of
// before the structured one read only the string.
func appArmorProfile(pod *v1.Pod, c *v1.Container) (*runtimeapi.SecurityProfile, string, error) {
	p := apparmor.GetProfile(pod, c)
	if p == nil {
		return nil, "", nil
	}
	switch p.Type {
	case v1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, v1.DeprecatedAppArmorBetaProfileRuntimeDefault, nil
	case v1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, v1.DeprecatedAppArmorBetaProfileNameUnconfined, nil
	case v1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil || strings.TrimSpace(*p.LocalhostProfile) == "" {
			return nil, "", errors.New("appArmorProfile of type Localhost needs localhostProfile")
		}
		name := *p.LocalhostProfile
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: name}, v1.DeprecatedAppArmorBetaProfileNamePrefix + name, nil
	}
	return nil, "", fmt.Errorf("unknown appArmorProfile type %q", p.Type)
}

// securityContext is the CRI security context of c, once the node has
// checked it can enforce it and the image's user against runAsNonRoot.
// An error keeps the container from starting (CreateContainerConfigError).
func (w *podWorker) securityContext(ctx context.Context, pod *v1.Pod, c *v1.Container) (*runtimeapi.LinuxContainerSecurityContext, error) {
	sec := w.agent.security
	if err := sec.refuseContainer(pod, c); err != nil {
		return nil, err
	}
	uid, username, err := w.imageUser(ctx, c.Image)
	if err != nil {
		return nil, err
	}
	if err := verifyRunAsNonRoot(pod, c, uid, username); err != nil {
		return nil, err
	}
	return containerSecurity(pod, c, namespaceOptions(pod, w.agent.runtime.HostNetworkOnly), sec.seccompRoot, uid, username)
}

// imageUser is who the image runs as: a uid, or a name only the runtime
// can resolve; an image that names no user runs as root.
func (w *podWorker) imageUser(ctx context.Context, image string) (*int64, string, error) {
	st, err := w.agent.runtime.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil {
		return nil, "", fmt.Errorf("reading the user of image %s: %w", image, err)
	}
	img := st.GetImage()
	switch {
	case img.GetUid() != nil:
		uid := img.GetUid().GetValue()
		return &uid, "", nil
	case img.GetUsername() != "":
		return nil, img.GetUsername(), nil
	}
	return new(int64), "", nil
}

// verifyRunAsNonRoot refuses a container that must not run as root but
// would, or might: the kubelet's rule, with its messages.
func verifyRunAsNonRoot(pod *v1.Pod, c *v1.Container, uid *int64, username string) error {
	eff := securitycontext.DetermineEffectiveSecurityContext(pod, c)
	if eff.RunAsNonRoot == nil || !*eff.RunAsNonRoot {
		return nil
	}
	if eff.RunAsUser != nil {
		if *eff.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", format.Pod(pod), c.Name)
		}
		return nil
	}
	switch {
	case uid == nil && username != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", username, format.Pod(pod), c.Name)
	case uid == nil:
		return nil
	case *uid == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", format.Pod(pod), c.Name)
	}
	if errs := validation.IsValidUserID(*uid); len(errs) > 0 {
		return fmt.Errorf("container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): %s (pod: %q, container: %s)",
			*uid, math.MaxInt32, strings.Join(errs, "; "), format.Pod(pod), c.Name)
	}
	return nil
}

// refuseContainer says why c cannot run here with the isolation it asks
// for, or nil.
func (s *nodeSecurity) refuseContainer(pod *v1.Pod, c *v1.Container) error {
	eff := securitycontext.DetermineEffectiveSecurityContext(pod, c)
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		return errors.New("hostUsers: false (a user namespace) is not supported on this node")
	}
	if eff.ProcMount != nil && *eff.ProcMount == v1.UnmaskedProcMount {
		return errors.New("procMount: Unmasked needs hostUsers: false, which this node does not support")
	}
	if err := contradictsNoNewPrivs(eff); err != nil {
		return err
	}
	if o := eff.SELinuxOptions; o != nil && *o != (v1.SELinuxOptions{}) && !s.seLinux {
		return fmt.Errorf("seLinuxOptions %+v cannot be enforced: SELinux is not enabled on this node", *o)
	}
	if o := eff.WindowsOptions; o != nil && (o.RunAsUserName != nil || (o.HostProcess != nil && *o.HostProcess)) {
		return errors.New("windowsOptions runAsUserName and hostProcess cannot be honoured by a Linux node")
	}
	if err := s.checkSeccomp(pod, c); err != nil {
		return err
	}
	return s.checkAppArmor(pod, c)
}

// contradictsNoNewPrivs refuses what API validation does: no_new_privs
// with privileged or CAP_SYS_ADMIN, which would silently lose one or the
// other.
func contradictsNoNewPrivs(eff *v1.SecurityContext) error {
	if eff.AllowPrivilegeEscalation == nil || *eff.AllowPrivilegeEscalation {
		return nil
	}
	if eff.Privileged != nil && *eff.Privileged {
		return errors.New("cannot set allowPrivilegeEscalation to false and privileged to true")
	}
	if eff.Capabilities != nil {
		for _, c := range eff.Capabilities.Add {
			if c == "CAP_SYS_ADMIN" {
				return errors.New("cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN")
			}
		}
	}
	return nil
}

func (s *nodeSecurity) checkSeccomp(pod *v1.Pod, c *v1.Container) error {
	p, err := seccompProfile(pod, c, s.seccompRoot)
	if err != nil {
		return err
	}
	if p.ProfileType == runtimeapi.SecurityProfile_Localhost && !s.fileExists(p.LocalhostRef) {
		return fmt.Errorf("seccomp profile %s not found on this node", p.LocalhostRef)
	}
	return nil
}

func (s *nodeSecurity) checkAppArmor(pod *v1.Pod, c *v1.Container) error {
	p, _, err := appArmorProfile(pod, c)
	if err != nil || p == nil || p.ProfileType != runtimeapi.SecurityProfile_Localhost {
		return err
	}
	loaded, err := s.appArmorLoaded(p.LocalhostRef)
	if err != nil {
		return fmt.Errorf("AppArmor profile %q: %w", p.LocalhostRef, err)
	}
	if !loaded {
		return fmt.Errorf("AppArmor profile %q is not loaded on this node", p.LocalhostRef)
	}
	return nil
}

// refusePod is the kubelet's admission of the pod's security settings: a
// reason and message that fail the pod, or "" when it may run here.
func (s *nodeSecurity) refusePod(ctx context.Context, pod *v1.Pod, ns *runtimeapi.NamespaceOption) (reason, message string) {
	if pod.Spec.OS != nil && pod.Spec.OS.Name != v1.Linux {
		return "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"
	}
	if err := s.sysctls.admit(pod, ns); err != nil {
		return "SysctlForbidden", "forbidden sysctl: " + err.Error()
	}
	if s.appArmor != nil {
		if err := s.appArmor.Validate(pod); err != nil {
			return "AppArmor", "Cannot enforce AppArmor: " + err.Error()
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil && psc.SupplementalGroupsPolicy != nil &&
		*psc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict && !s.strictGroups(ctx) {
		return "SupplementalGroupsPolicyNotSupported", "SupplementalGroupsPolicy=Strict is not supported in this node"
	}
	return "", ""
}

// sysctlAllowlist is what pods may set: the kubelet's safe sysctls and
// the operator's unsafe ones, each in a namespace the pod has its own of.
type sysctlAllowlist struct {
	names    map[string]sysctl.Namespace
	prefixes map[string]sysctl.Namespace
}

// safeSysctls are the kubelet's: namespaced, and without effect on other
// pods. Some are namespaced only from a kernel version on.
var safeSysctls = []struct{ name, kernel string }{
	{"kernel.shm_rmid_forced", ""},
	{"net.ipv4.ip_local_port_range", ""},
	{"net.ipv4.tcp_syncookies", ""},
	{"net.ipv4.ping_group_range", ""},
	{"net.ipv4.ip_unprivileged_port_start", ""},
	{"net.ipv4.ip_local_reserved_ports", utilkernel.IPLocalReservedPortsNamespacedKernelVersion},
	{"net.ipv4.tcp_keepalive_time", utilkernel.TCPKeepAliveTimeNamespacedKernelVersion},
	{"net.ipv4.tcp_fin_timeout", utilkernel.TCPFinTimeoutNamespacedKernelVersion},
	{"net.ipv4.tcp_keepalive_intvl", utilkernel.TCPKeepAliveIntervalNamespacedKernelVersion},
	{"net.ipv4.tcp_keepalive_probes", utilkernel.TCPKeepAliveProbesNamespacedKernelVersion},
	{"net.ipv4.tcp_rmem", utilkernel.TCPReceiveMemoryNamespacedKernelVersion},
	{"net.ipv4.tcp_wmem", utilkernel.TCPTransmitMemoryNamespacedKernelVersion},
	{"net.ipv4.tcp_slow_start_after_idle", utilkernel.TCPSlowStartAfterIdleNamespacedKernelVersion},
	{"net.ipv4.tcp_notsent_lowat", utilkernel.TCPNotSentLowatNamespacedKernelVersion},
}

// newSysctlAllowlist allows the safe sysctls namespaced in kernel (all of
// them when nil: no host to check) and the valid unsafe patterns.
func newSysctlAllowlist(logger klog.Logger, kernel *version.Version, unsafe []string) sysctlAllowlist {
	l := sysctlAllowlist{names: map[string]sysctl.Namespace{}, prefixes: map[string]sysctl.Namespace{}}
	for _, s := range safeSysctls {
		if kernel != nil && s.kernel != "" && !kernel.AtLeast(version.MustParseGeneric(s.kernel)) {
			continue
		}
		ns, _, _ := sysctl.GetNamespace(s.name)
		l.names[s.name] = ns
	}
	for _, p := range unsafe {
		ns, name, prefix, err := parseSysctlPattern(p)
		switch {
		case err != nil:
			logger.Error(err, "Ignoring an allowed unsafe sysctl")
		case prefix:
			l.prefixes[name] = ns
		default:
			l.names[name] = ns
		}
	}
	return l
}

// parseSysctlPattern reads a sysctl name, or a prefix ending in *.
func parseSysctlPattern(p string) (ns sysctl.Namespace, name string, prefix bool, err error) {
	if p == "" || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
		return "", "", false, fmt.Errorf("sysctl pattern %q: want a name, or a prefix ending in *", p)
	}
	ns, name, prefix = sysctl.GetNamespace(p)
	if ns == sysctl.UnknownNamespace {
		return "", "", false, fmt.Errorf("sysctl %q is not known to be namespaced", p)
	}
	return ns, name, prefix, nil
}

// admit checks the pod's sysctls: each allowed, and not in a namespace
// the pod shares with the node, where it would set the node's.
func (l sysctlAllowlist) admit(pod *v1.Pod, ns *runtimeapi.NamespaceOption) error {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil
	}
	for _, s := range psc.Sysctls {
		name := sysctl.NormalizeName(s.Name)
		kind, ok := l.namespace(name)
		if !ok {
			return fmt.Errorf("%q not allowlisted", name)
		}
		if sharedWithNode(pod, ns, kind) {
			return fmt.Errorf("%q not allowed with host %s enabled", name, kind)
		}
	}
	return nil
}

func (l sysctlAllowlist) namespace(name string) (sysctl.Namespace, bool) {
	if ns, ok := l.names[name]; ok {
		return ns, true
	}
	for p, ns := range l.prefixes {
		if strings.HasPrefix(name, p) {
			return ns, true
		}
	}
	return "", false
}

func sharedWithNode(pod *v1.Pod, ns *runtimeapi.NamespaceOption, kind sysctl.Namespace) bool {
	switch kind {
	case sysctl.NetNamespace:
		return ns.Network == runtimeapi.NamespaceMode_NODE
	case sysctl.IPCNamespace:
		return ns.Ipc == runtimeapi.NamespaceMode_NODE
	case sysctl.UserNamespace:
		return pod.Spec.HostUsers == nil || *pod.Spec.HostUsers
	}
	return false
}
