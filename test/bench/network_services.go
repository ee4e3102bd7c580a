package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/test/netlab"
)

// serviceSet is selector-less Services, each with one EndpointSlice of
// made-up endpoints: service i is svc-<i mod perTenant> in tenant
// tenants[i / perTenant].
type serviceSet struct {
	tenants   []string
	perTenant int
	slices    []*discoveryv1.EndpointSlice
}

func (s *serviceSet) size() int                { return len(s.tenants) * s.perTenant }
func (s *serviceSet) tenant(i int) string      { return s.tenants[i/s.perTenant] }
func (s *serviceSet) serviceName(i int) string { return fmt.Sprintf("svc-%d", i%s.perTenant) }
func (s *serviceSet) describe() string {
	return fmt.Sprintf("%d tenant(s) × %d Services", len(s.tenants), s.perTenant)
}

// programRun is a serviceSet made and programmed on the node.
type programRun struct {
	tenants    time.Duration // creating the tenants, until each serves
	programmed time.Duration // first Service created → all on the node
	afterLast  time.Duration // last Service created → all on the node
	agentCPU   float64       // seconds, over the same span
}

// changeRun is EndpointSlice changes timed to their rule on the node.
type changeRun struct {
	latencies []time.Duration // update call began → a rule naming the new endpoint seen
	updates   []time.Duration // the update calls
	missed    int             // not seen within changeTimeout
}

const changeTimeout = 30 * time.Second

// chains counts the node's nftables chains (family ip) whose line
// contains every one of parts.
func (b *networkBench) chains(parts ...string) (int, error) {
	out, err := netlab.Command(b.nodeNS, "nft", "list", "chains", "ip").Output()
	if err != nil {
		return 0, fmt.Errorf("nft list chains on %s: %w", networkNode, err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// programmedServices counts the bench's Services (named svc-<n>) that the
// node's kube-proxy table sends to their chain (its map service-ips): the
// proxier adds a Service there, with the chain's rule to its endpoints,
// once it has endpoints, and removes it with them. (A gone Service's chain
// is flushed at once but deleted only at a later sync.)
func (b *networkBench) programmedServices() (int, error) {
	out, err := netlab.Command(b.nodeNS, "nft", "list", "map", "ip", "kube-proxy", "service-ips").Output()
	if err != nil {
		return 0, fmt.Errorf("nft list map ip kube-proxy service-ips on %s: %w", networkNode, err)
	}
	return len(benchServiceTarget.FindAllString(string(out), -1)), nil
}

var benchServiceTarget = regexp.MustCompile(`goto service-\S*/svc-`)

// endpointsOnNode counts the made-up endpoints (10.244.0.0/16 addresses
// on port 80) the node's kube-proxy table translates to.
func (b *networkBench) endpointsOnNode() (int, error) {
	out, err := netlab.Command(b.nodeNS, "nft", "list", "table", "ip", "kube-proxy").Output()
	if err != nil {
		return 0, fmt.Errorf("nft list table ip kube-proxy on %s: %w", networkNode, err)
	}
	return len(endpointInRule.FindAllString(string(out), -1)), nil
}

// waitProgrammed polls until the node has want of the bench's Services,
// with all their endpoints: the Services are counted every 250 ms (one
// map), the endpoints once the Services are all there (the whole table).
func (b *networkBench) waitProgrammed(want int, what string) error {
	deadline := time.Now().Add(15 * time.Minute)
	lastReport := time.Now()
	for {
		n, err := b.programmedServices()
		if err != nil {
			return err
		}
		if n == want {
			eps, err := b.endpointsOnNode()
			if err != nil {
				return err
			}
			if eps == endpointsPerService*want {
				return nil
			}
		}
		if !alive(b.agent) {
			return fmt.Errorf("the agent exited: see %s", b.agentLog)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d Services on %s after 15 minutes, want %d (%s): see %s", n, networkNode, want, what, b.agentLog)
		}
		if time.Since(lastReport) >= 15*time.Second {
			lastReport = time.Now()
			progress("%s: %d of %d Services on the node", what, n, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// createTenants creates the set's tenants, 4 at a time, and returns how
// long until each served.
func (b *networkBench) createTenants(ctx context.Context, s *serviceSet) (time.Duration, error) {
	progress("%s: creating the tenants", s.describe())
	began := time.Now()
	if err := parallel(s.tenants, 4, func(t string) error {
		_, err := b.newTenant(ctx, t)
		return err
	}); err != nil {
		return 0, err
	}
	took := time.Since(began)
	progress("%s: tenants serving in %s", s.describe(), took.Round(time.Millisecond))
	return took, nil
}

// program creates the set's Services in its tenants, and waits until the
// node has them all, with their endpoints.
func (b *networkBench) program(ctx context.Context, s *serviceSet) (*programRun, error) {
	total := s.size()
	what := s.describe()
	r := &programRun{}
	progress("%s: creating the Services and EndpointSlices", what)
	s.slices = make([]*discoveryv1.EndpointSlice, total)
	indices := make([]int, total)
	for i := range indices {
		indices[i] = i
	}
	cpu0, _ := cpuSeconds(b.agent.cmd.Process.Pid)
	began := time.Now()
	if err := parallel(indices, 8, func(i int) error {
		c, err := b.client(s.tenant(i))
		if err != nil {
			return err
		}
		slice, err := createService(ctx, c, s.serviceName(i), uint32(endpointsPerService*i))
		s.slices[i] = slice
		return err
	}); err != nil {
		return nil, err
	}
	created := time.Now()
	progress("%s: created in %s; waiting for the node to program them", what, created.Sub(began).Round(time.Millisecond))
	if err := b.waitProgrammed(total, what); err != nil {
		return nil, err
	}
	r.programmed, r.afterLast = time.Since(began), time.Since(created)
	cpu1, _ := cpuSeconds(b.agent.cmd.Process.Pid)
	r.agentCPU = cpu1 - cpu0
	progress("%s: programmed %s after the first create", what, r.programmed.Round(time.Millisecond))
	return r, nil
}

// benchManagedBy marks the bench's EndpointSlices, which no controller
// manages.
const benchManagedBy = "bench.kplex.io"

// createService creates a selector-less ClusterIP Service name and its
// EndpointSlice of endpointsPerService made-up endpoints, the first at
// endpointIP(first).
func createService(ctx context.Context, c kubernetes.Interface, name string, first uint32) (*discoveryv1.EndpointSlice, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating Service %s: %w", name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: benchManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(80)), Protocol: new(corev1.ProtocolTCP)}},
	}
	for k := range uint32(endpointsPerService) {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{endpointIP(first + k)}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}})
	}
	created, err := c.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating EndpointSlice %s: %w", name, err)
	}
	return created, nil
}

// nextChangeIP is a made-up endpoint no Service has had yet.
func (b *networkBench) nextChangeIP() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changes++
	return endpointIP(endpointRange - 1 - b.changes) // below the broadcast address
}

// timeChanges replaces one endpoint of a random Service of s at a time,
// each at least the proxier's min sync period (1 s) after the last was
// programmed, and times the update to the node's rule translating to the
// new endpoint, seen by `nft monitor`.
func (b *networkBench) timeChanges(ctx context.Context, s *serviceSet) (*changeRun, error) {
	what := s.describe()
	progress("%s: timing %d EndpointSlice changes to their rule on the node", what, b.opts.Changes)
	mon, err := monitorRules(b.nodeNS)
	if err != nil {
		return nil, err
	}
	defer mon.stop()
	rng := rand.New(rand.NewPCG(uint64(s.size()), uint64(len(s.tenants))))
	r := &changeRun{}
	for range b.opts.Changes {
		time.Sleep(time.Second + time.Duration(rng.IntN(500))*time.Millisecond)
		i := rng.IntN(s.size())
		c, err := b.client(s.tenant(i))
		if err != nil {
			return nil, err
		}
		ip := b.nextChangeIP()
		began := time.Now()
		updated, err := replaceEndpoint(ctx, c, s.slices[i], ip)
		if err != nil {
			return nil, err
		}
		r.updates = append(r.updates, time.Since(began))
		s.slices[i] = updated
		at, ok := mon.wait(ip, began.Add(changeTimeout))
		if !ok {
			if mon.exited() {
				return nil, fmt.Errorf("nft monitor exited: %s", mon.stderr.String())
			}
			r.missed++
			continue
		}
		r.latencies = append(r.latencies, at.Sub(began))
	}
	progress("%s: change → rule p50 %s, p99 %s", what, ms(percentile(r.latencies, 0.5)), ms(percentile(r.latencies, 0.99)))
	return r, nil
}

// replaceEndpoint updates slice's last endpoint to ip.
func replaceEndpoint(ctx context.Context, c kubernetes.Interface, slice *discoveryv1.EndpointSlice, ip string) (*discoveryv1.EndpointSlice, error) {
	changed := slice.DeepCopy()
	changed.Endpoints[len(changed.Endpoints)-1].Addresses = []string{ip}
	updated, err := c.DiscoveryV1().EndpointSlices("default").Update(ctx, changed, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating EndpointSlice %s: %w", slice.Name, err)
	}
	return updated, nil
}

// ruleMonitor follows `nft monitor new rules` on a node and records when
// a rule naming each endpoint first appeared in kube-proxy's table:
// nftables reports a rule once the transaction that added it is
// committed, so the rule is in place.
type ruleMonitor struct {
	cmd     *exec.Cmd
	stderr  strings.Builder
	mu      sync.Mutex
	seen    map[string]time.Time
	changed chan struct{}
	done    chan struct{} // closed once nft exits
}

// endpointInRule finds the bench's endpoints in the proxier's rules:
// "... dnat ip addr . port to numgen random mod 2 map { 0 : 10.244.64.2 .
// 80, 1 : 10.244.64.3 . 80 }", or "dnat to 10.244.64.2:80" for one.
var endpointInRule = regexp.MustCompile(`10\.244\.\d+\.\d+( \. |:)80\b`)

func monitorRules(netns string) (*ruleMonitor, error) {
	m := &ruleMonitor{cmd: netlab.Command(netns, "nft", "monitor", "new", "rules"),
		seen: map[string]time.Time{}, changed: make(chan struct{}, 1), done: make(chan struct{})}
	m.cmd.Stderr = &m.stderr
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nft monitor: %w", err)
	}
	go func() {
		defer close(m.done)
		s := bufio.NewScanner(out)
		s.Buffer(make([]byte, 64<<10), 16<<20)
		for s.Scan() {
			at := time.Now()
			line := s.Text()
			if !strings.HasPrefix(line, "add rule ip kube-proxy ") {
				continue
			}
			m.mu.Lock()
			for _, ep := range endpointInRule.FindAllString(line, -1) {
				ip := strings.TrimRight(ep[:strings.IndexAny(ep, " :")], " ")
				if _, ok := m.seen[ip]; !ok {
					m.seen[ip] = at
				}
			}
			m.mu.Unlock()
			select {
			case m.changed <- struct{}{}:
			default:
			}
		}
		_ = m.cmd.Wait()
	}()
	return m, nil
}

// wait returns when a rule naming endpoint ip was first seen, or false if
// none was by deadline.
func (m *ruleMonitor) wait(ip string, deadline time.Time) (time.Time, bool) {
	for {
		m.mu.Lock()
		at, ok := m.seen[ip]
		m.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-m.changed:
		case <-m.done:
			return time.Time{}, false
		case <-time.After(time.Until(deadline)):
			return time.Time{}, false
		}
	}
}

func (m *ruleMonitor) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *ruleMonitor) stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

// reference deletes multi's Services, then programs and times as many in
// one tenant.
func (b *networkBench) reference(ctx context.Context, multi *serviceSet) (*programRun, *changeRun, error) {
	total := multi.size()
	progress("reference: deleting the %s", multi.describe())
	if err := parallel(multi.tenants, 8, func(t string) error {
		c, err := b.client(t)
		if err != nil {
			return err
		}
		for j := range multi.perTenant {
			if err := c.CoreV1().Services("default").Delete(ctx, multi.serviceName(j), metav1.DeleteOptions{}); err != nil {
				return err
			}
		}
		return c.DiscoveryV1().EndpointSlices("default").DeleteCollection(ctx, metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + benchManagedBy})
	}); err != nil {
		return nil, nil, err
	}
	if err := b.waitProgrammed(0, "reference: deleting"); err != nil {
		return nil, nil, err
	}
	ref := &serviceSet{tenants: []string{"ref"}, perTenant: total}
	if _, err := b.createTenants(ctx, ref); err != nil {
		return nil, nil, err
	}
	p, err := b.program(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	ch, err := b.timeChanges(ctx, ref)
	return p, ch, err
}
