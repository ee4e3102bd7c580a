package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/version"
	"k8s.io/component-helpers/apimachinery/lease"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// NodeLeaseNamespace holds every node's Lease, as in Kubernetes.
const NodeLeaseNamespace = "kube-node-lease"

// declaredFeatures tell the apiserver that the agent serves exec and attach
// over WebSockets itself, so it proxies them here as they come.
var declaredFeatures = []string{"ExtendWebSocketsToKubelet"}

// nodeStatus keeps the Node of one agent registered and its status current.
type nodeStatus struct {
	name     string
	cfg      *Config
	client   kubernetes.Interface
	capacity func() v1.ResourceList
	runtime  func(context.Context) (version string, ready error)
	// network says why pods cannot get a network (nil: they can, or the
	// node runs them on its own network).
	network func() error
	// pokes asks for a status write now.
	pokes chan struct{}

	// fileLabels are the labels last applied from --node-labels-dir.
	fileLabels map[string]string

	lastWritten v1.NodeStatus
	lastWriteAt time.Time
	// nodeUID is the registered Node's, read by the lease controller's
	// goroutine to own the Lease.
	nodeUID atomic.Value // types.UID
}

// ensureTenantPool makes the dedicated pool a node fenced to one tenant
// joins, or checks that the existing one is dedicated to that tenant.
func ensureTenantPool(ctx context.Context, dyn dynamic.Interface, tenantName string) error {
	name := TenantPoolName(tenantName)
	pools := dyn.Resource(schedulingv1alpha1.NodePoolsResource)
	u, err := pools.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		pool := &schedulingv1alpha1.NodePool{
			TypeMeta:   metav1.TypeMeta{APIVersion: schedulingv1alpha1.SchemeGroupVersion.String(), Kind: "NodePool"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "kplex-nodeagent"}},
			Spec:       schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Dedicated, Tenants: []string{tenantName}},
		}
		obj, convErr := runtime.DefaultUnstructuredConverter.ToUnstructured(pool)
		if convErr != nil {
			return convErr
		}
		_, err = pools.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return ensureTenantPool(ctx, dyn, tenantName)
		}
		if apierrors.IsForbidden(err) {
			// A node's own identity may not make pools: which nodes a tenant
			// owns is the operator's decision.
			return fmt.Errorf("--tenant %s: NodePool %s does not exist and this node may not create it; as the operator: kubectl --context kplex-root apply a NodePool %s with mode dedicated and tenants [%s]: %w", tenantName, name, name, tenantName, err)
		}
		if err != nil {
			return fmt.Errorf("creating NodePool %s for tenant %s: %w", name, tenantName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading NodePool %s: %w", name, err)
	}
	var pool schedulingv1alpha1.NodePool
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &pool); err != nil {
		return fmt.Errorf("decoding NodePool %s: %w", name, err)
	}
	if pool.Spec.Mode != schedulingv1alpha1.Dedicated || len(pool.Spec.Tenants) != 1 || pool.Spec.Tenants[0] != tenantName {
		return fmt.Errorf("--tenant %s: NodePool %s exists but is not dedicated to tenant %s; the node would not be fenced", tenantName, name, tenantName)
	}
	return nil
}

// node is the Node the agent registers, before status.
func (n *nodeStatus) desired() (*v1.Node, error) {
	labels := map[string]string{
		v1.LabelHostname:   n.name,
		v1.LabelOSStable:   goruntime.GOOS,
		v1.LabelArchStable: goruntime.GOARCH,
	}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	switch {
	case n.cfg.Pool != "":
		labels[schedulingv1alpha1.PoolLabel] = n.cfg.Pool
	case n.cfg.Tenant != "":
		labels[schedulingv1alpha1.PoolLabel] = TenantPoolName(n.cfg.Tenant)
	}
	taints, err := n.cfg.ParsedTaints()
	if err != nil {
		return nil, err
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels},
		Spec:       v1.NodeSpec{Taints: taints},
	}, nil
}

// register creates the Node, or adopts the one a previous run left: its
// labels and taints are brought up to date and its pods are kept.
func (n *nodeStatus) register(ctx context.Context) error {
	want, err := n.desired()
	if err != nil {
		return err
	}
	nodes := n.client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		n.nodeUID.Store(created.UID)
		klog.FromContext(ctx).Info("Registered node", "node", n.name)
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", n.name, err)
	}
	existing, err := nodes.Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node %s: %w", n.name, err)
	}
	updated := existing.DeepCopy()
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		updated.Labels[k] = v
	}
	// Without --pool or --tenant the label stays: a node fenced to a tenant
	// is unfenced by an operator, never by a restart with other flags.
	for _, t := range want.Spec.Taints {
		if !hasTaint(updated.Spec.Taints, t) {
			updated.Spec.Taints = append(updated.Spec.Taints, t)
		}
	}
	if !equality.Semantic.DeepEqual(existing.ObjectMeta.Labels, updated.ObjectMeta.Labels) || !equality.Semantic.DeepEqual(existing.Spec, updated.Spec) {
		if updated, err = nodes.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating node %s: %w", n.name, err)
		}
	}
	n.nodeUID.Store(updated.UID)
	klog.FromContext(ctx).Info("Node already registered: adopted it", "node", n.name)
	return nil
}

func hasTaint(taints []v1.Taint, t v1.Taint) bool {
	for _, x := range taints {
		if x.Key == t.Key && x.Effect == t.Effect {
			return true
		}
	}
	return false
}

// status computes the node's status; ready says whether the agent can run
// pods (nil) or why not.
// poke asks the agent's loop to write the status now.
func (n *nodeStatus) poke() {
	select {
	case n.pokes <- struct{}{}:
	default:
	}
}

func (n *nodeStatus) status(ctx context.Context, stopping bool) v1.NodeStatus {
	runtimeVersion, runtimeErr := n.runtime(ctx)
	capacity := n.capacity()
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kplex-nodeagent is posting ready status"}
	switch {
	case stopping:
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletStopped", Message: "kplex-nodeagent stopped; its pods keep running until it is back"}
	case runtimeErr != nil:
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: fmt.Sprintf("container runtime is down: %v", runtimeErr)}
	case n.network != nil && n.network() != nil:
		// The kubelet's words, which tools and people search for.
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady",
			Message: fmt.Sprintf("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:%v", n.network())}
	}
	conditions := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kplex-nodeagent has sufficient memory available"},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kplex-nodeagent has no disk pressure"},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kplex-nodeagent has sufficient PID available"},
		ready,
	}
	ip := n.cfg.NodeIP
	return v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Conditions:  conditions,
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: ip},
			{Type: v1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(n.cfg.Port)}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               machineID(),
			BootID:                  bootID(),
			KernelVersion:           kernelVersion(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: runtimeVersion,
			KubeletVersion:          version.Get().GitVersion,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
		DeclaredFeatures: declaredFeatures,
		RuntimeHandlers:  n.runtimeHandlers(),
	}
}

// runtimeHandlers are the handlers --runtime-handlers names, as the
// kubelet reports those its runtime has.
func (n *nodeStatus) runtimeHandlers() []v1.NodeRuntimeHandler {
	var out []v1.NodeRuntimeHandler
	for _, h := range n.cfg.RuntimeHandlers {
		out = append(out, v1.NodeRuntimeHandler{Name: h, Features: &v1.NodeRuntimeHandlerFeatures{}})
	}
	return out
}

// sync writes the node's status when it changed, or when it was last
// written longer ago than the report frequency.
func (n *nodeStatus) sync(ctx context.Context, stopping bool) error {
	st := n.status(ctx, stopping)
	if !stopping && time.Since(n.lastWriteAt) < n.cfg.NodeStatusReport && sameStatus(n.lastWritten, st) {
		return nil
	}
	nodes := n.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && !stopping {
		// Deleted by an operator while the agent runs: register again, as the
		// kubelet does.
		if err := n.register(ctx); err != nil {
			return err
		}
		node, err = nodes.Get(ctx, n.name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("reading node %s: %w", n.name, err)
	}
	now := metav1.Now()
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	updated := node.DeepCopy()
	node, updated = updated, node
	node.Status.Capacity = st.Capacity
	node.Status.Allocatable = st.Allocatable
	node.Status.Conditions = st.Conditions
	node.Status.Addresses = st.Addresses
	node.Status.DaemonEndpoints = st.DaemonEndpoints
	node.Status.NodeInfo = st.NodeInfo
	node.Status.DeclaredFeatures = st.DeclaredFeatures
	node.Status.RuntimeHandlers = st.RuntimeHandlers
	// A patch, as the kubelet's: other writers of the node (taints, pool
	// labels) do not make the heartbeat fail.
	if _, _, err := nodeutil.PatchNodeStatus(n.client.CoreV1(), types.NodeName(n.name), updated, node); err != nil {
		return fmt.Errorf("writing node %s status: %w", n.name, err)
	}
	n.lastWritten, n.lastWriteAt = st, time.Now()
	return nil
}

// sameStatus compares what the agent decides, not the timestamps.
func sameStatus(a, b v1.NodeStatus) bool {
	if !equality.Semantic.DeepEqual(a.Capacity, b.Capacity) || !equality.Semantic.DeepEqual(a.Addresses, b.Addresses) || a.NodeInfo != b.NodeInfo ||
		!equality.Semantic.DeepEqual(a.RuntimeHandlers, b.RuntimeHandlers) {
		return false
	}
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		// The message says why (which network plugin is missing): a new
		// reason under the same status is news too.
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status ||
			a.Conditions[i].Reason != b.Conditions[i].Reason || a.Conditions[i].Message != b.Conditions[i].Message {
			return false
		}
	}
	return true
}

// heartbeat renews the node's Lease in kube-node-lease, as the kubelet
// does, owned by the Node so that deleting the node deletes it.
func (n *nodeStatus) heartbeat(ctx context.Context, c kubernetes.Interface) {
	ctrl := lease.NewController(clock.RealClock{}, c, n.name, int32(n.cfg.LeaseDuration/time.Second), nil, n.cfg.RenewInterval, n.name, NodeLeaseNamespace,
		func(l *coordinationv1.Lease) error {
			// Owned by the node as registered now: a node deleted and
			// registered again owns its Lease anew.
			if uid, ok := n.nodeUID.Load().(types.UID); ok && (len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != uid) {
				l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: uid}}
			}
			return nil
		})
	ctrl.Run(ctx)
}

// capacityOf is a real node's capacity: its CPUs, memory and root disk.
func capacityOf(rootDir string, maxPods int) v1.ResourceList {
	out := v1.ResourceList{
		v1.ResourceCPU:  *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		v1.ResourcePods: *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
	}
	if mem := memTotal(); mem > 0 {
		out[v1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(rootDir, &fs); err == nil {
		out[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*int64(fs.Bsize), resource.BinarySI)
	}
	return out
}

func memTotal() int64 { return meminfo("MemTotal") }

// meminfo reads one line of /proc/meminfo, in bytes.
func meminfo(key string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key+":" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return kb * 1024
		}
	}
	return 0
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func machineID() string     { return readTrimmed("/etc/machine-id") }
func bootID() string        { return readTrimmed("/proc/sys/kernel/random/boot_id") }
func kernelVersion() string { return readTrimmed("/proc/sys/kernel/osrelease") }

func osImage() string {
	for _, line := range strings.Split(readTrimmed("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}

// outboundIP is the address the host reaches the apiserver from, else the
// first up interface's IPv4 address, else loopback.
func outboundIP(apiserver string) string {
	if u, err := url.Parse(apiserver); err == nil && u.Host != "" {
		host := u.Host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "443")
		}
		// A UDP "connection" sends nothing; it only picks the route.
		if conn, err := net.Dial("udp", host); err == nil {
			defer conn.Close()
			if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
				return a.IP.String()
			}
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

var errStopped = errors.New("agent stopped")
