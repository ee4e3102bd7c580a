package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kplex/kplex/test/netlab"
)

// dnsRun is A queries from one pod's network namespace, back to back.
type dnsRun struct {
	clients        int
	duration       time.Duration
	rtts           []time.Duration
	errors, wrong  int
	firstError     string
	from, question string
}

// podsAndDNS times pods on the pod network and on the host's, and the
// node's DNS server from one pod. Failures are findings for the table,
// not the end of the run.
func (b *networkBench) podsAndDNS(ctx context.Context) (first, podNet, podHost *podStartRun, d *dnsRun, podErr, dnsErr error) {
	// The DNS client pod is the first on the pod network (its sandbox
	// makes the node's bridge): it also warms the node for the others.
	dc, clusterIP, first, dnsErr := b.dnsClient(ctx)
	if b.opts.Pods > 0 {
		podNet, podHost, podErr = b.timePodStart(ctx)
	}
	if dnsErr == nil && b.opts.DNSClients > 0 {
		d, dnsErr = b.dnsLoad(ctx, dc, clusterIP)
	}
	return first, podNet, podHost, d, podErr, dnsErr
}

// readyBound is a busybox pod bound at creation to the lab's node, on its
// pod network or its host network, started once Ready.
func readyBound(hostNetwork bool) podKind {
	return podKind{
		pod: func(name string) *corev1.Pod {
			p := agentPod(name, networkNode)
			p.Spec.HostNetwork = hostNetwork
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
			return p
		},
		started: func(p *corev1.Pod) bool {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					return c.Status == corev1.ConditionTrue
				}
			}
			return false
		},
	}
}

// timePodStart creates the pods on the pod network, then as many on the
// host network, Batch at a time, each batch once the last is Ready.
func (b *networkBench) timePodStart(ctx context.Context) (podNet, podHost *podStartRun, err error) {
	c, err := b.newTenant(ctx, "pods")
	if err != nil {
		return nil, nil, err
	}
	if err := ensureDefaultServiceAccount(ctx, c); err != nil {
		return nil, nil, err
	}
	how := fmt.Sprintf("%d pods, %d at a time", b.opts.Pods, b.opts.Batch)
	for _, run := range []struct {
		hostNetwork bool
		prefix      string
		out         **podStartRun
	}{{false, "net", &podNet}, {true, "host", &podHost}} {
		progress("pods: %s, hostNetwork %t", how, run.hostNetwork)
		r, err := timePods(ctx, c, readyBound(run.hostNetwork), podNames(run.prefix, b.opts.Pods), b.opts.Batch, true, 3*time.Minute)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (agent log %s, containerd log %s)", err, b.agentLog, b.ctrd.Log)
		}
		r.how = how
		*run.out = r
		progress("pods: create → Ready p50 %s, p99 %s; deleting them", ms(percentile(r.toStarted, 0.5)), ms(percentile(r.toStarted, 0.99)))
		if err := deletePods(ctx, c, 1, 3*time.Minute); err != nil {
			return nil, nil, err
		}
	}
	return podNet, podHost, nil
}

// dnsClient makes tenant dns with Service web and a pod to ask from, and
// returns its client, web's cluster IP and the pod's start.
func (b *networkBench) dnsClient(ctx context.Context) (kubernetes.Interface, string, *podStartRun, error) {
	progress("dns: tenant dns, Service web and a client pod (the first on the pod network)")
	c, err := b.newTenant(ctx, "dns")
	if err != nil {
		return nil, "", nil, err
	}
	if err := ensureDefaultServiceAccount(ctx, c); err != nil {
		return nil, "", nil, err
	}
	web, err := c.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", nil, err
	}
	first, err := timePods(ctx, c, readyBound(false), []string{"dns-client"}, 1, true, 3*time.Minute)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w (agent log %s, containerd log %s)", err, b.agentLog, b.ctrd.Log)
	}
	first.how = "1 pod"
	return c, web.Spec.ClusterIP, first, nil
}

// dnsLoad runs the DNS clients in the client pod's network namespace.
func (b *networkBench) dnsLoad(ctx context.Context, c kubernetes.Interface, want string) (*dnsRun, error) {
	pod, err := c.CoreV1().Pods("default").Get(ctx, "dns-client", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	netns, err := sandboxNetns(ctx, b.ctrd.Endpoint, string(pod.UID))
	if err != nil {
		return nil, err
	}
	progress("dns: %d clients in the namespace of pod dns-client (%s, %s) for %s", b.opts.DNSClients, pod.Status.PodIP, netns, b.opts.DNSDuration)
	d, err := queryDNS(ctx, netns, "10.96.0.10:53", "web.default.svc.cluster.local.", want, b.opts.DNSClients, b.opts.DNSDuration)
	if err != nil {
		return nil, err
	}
	d.from = pod.Status.PodIP
	// web goes, so that the reference holds its Services only.
	if err := c.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		return nil, err
	}
	return d, nil
}

// queryDNS asks server for name's A record from clients sockets made in
// netns, back to back, for d; want is the answer's address.
func queryDNS(ctx context.Context, netns, server, name, want string, clients int, d time.Duration) (*dnsRun, error) {
	dial := netlab.DialIn(netns)
	conns := make([]*dns.Conn, clients)
	for i := range conns {
		c, err := dial(ctx, "udp", server)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = &dns.Conn{Conn: c}
	}
	client := &dns.Client{Timeout: 2 * time.Second}
	ask := func(conn *dns.Conn) (string, time.Duration, error) {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		began := time.Now()
		r, _, err := client.ExchangeWithConnContext(ctx, m, conn)
		took := time.Since(began)
		if err != nil {
			return "", took, err
		}
		if r.Rcode != dns.RcodeSuccess {
			return "", took, fmt.Errorf("%s", dns.RcodeToString[r.Rcode])
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				return a.A.String(), took, nil
			}
		}
		return "", took, errors.New("no A record")
	}
	// One answer first: it must be right before anything is timed.
	got, _, err := ask(conns[0])
	if err != nil || got != want {
		return nil, fmt.Errorf("%s from the pod: %q, %v; want %s", name, got, err, want)
	}
	r := &dnsRun{clients: clients, question: name}
	var mu sync.Mutex
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(d)
	for _, conn := range conns {
		wg.Go(func() {
			var rtts []time.Duration
			var errs, wrong int
			var firstErr string
			for time.Now().Before(deadline) {
				got, took, err := ask(conn)
				switch {
				case err != nil:
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				case got != want:
					wrong++
				default:
					rtts = append(rtts, took)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			r.rtts = append(r.rtts, rtts...)
			r.errors += errs
			r.wrong += wrong
			if r.firstError == "" {
				r.firstError = firstErr
			}
		})
	}
	wg.Wait()
	r.duration = time.Since(began)
	return r, nil
}

// sandboxNetns finds the network namespace of pod uid's sandbox from the
// runtime's verbose sandbox status: its runtime spec's network namespace,
// or the sandbox process's.
func sandboxNetns(ctx context.Context, endpoint, uid string) (string, error) {
	rt, closeConn, err := criRuntime(endpoint)
	if err != nil {
		return "", err
	}
	defer closeConn()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil {
		return "", err
	}
	for _, sb := range list.Items {
		if sb.GetMetadata().GetUid() != uid {
			continue
		}
		st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.Id, Verbose: true})
		if err != nil {
			return "", err
		}
		var info struct {
			Pid         int `json:"pid"`
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string }
				}
			} `json:"runtimeSpec"`
		}
		if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
			return "", fmt.Errorf("sandbox %s: verbose status: %w", sb.Id, err)
		}
		for _, ns := range info.RuntimeSpec.Linux.Namespaces {
			if ns.Type == "network" && ns.Path != "" {
				return ns.Path, nil
			}
		}
		if info.Pid > 0 {
			return fmt.Sprintf("/proc/%d/ns/net", info.Pid), nil
		}
		return "", fmt.Errorf("sandbox %s: no network namespace in its status", sb.Id)
	}
	return "", fmt.Errorf("no ready sandbox of pod %s in containerd", uid)
}

// criRuntime is a CRI runtime client of the endpoint, and its closer.
func criRuntime(endpoint string) (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("dialing the runtime at %s: %w", endpoint, err)
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// removeSandboxes stops and removes every sandbox of the runtime, so that
// their network namespaces go before containerd does.
func removeSandboxes(endpoint string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, closeConn, err := criRuntime(endpoint)
	if err != nil {
		return
	}
	defer closeConn()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, sb := range list.Items {
		_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			progress("removing sandbox %s: %v", sb.Id, err)
		}
	}
}

// cleanUpPods deletes the bench's pods through the agent, which removes
// their sandboxes and network namespaces.
func (b *networkBench) cleanUpPods(ctx context.Context) {
	for _, t := range []string{"pods", "dns"} {
		b.mu.Lock()
		c, ok := b.clients[t]
		b.mu.Unlock()
		if !ok {
			continue
		}
		if err := deletePods(ctx, c, 1, 2*time.Minute); err != nil {
			progress("deleting tenant %s's pods: %v", t, err)
		}
	}
	time.Sleep(time.Second) // the agent's last removals, so stopping it cancels none
}
