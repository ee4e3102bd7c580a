package resourcemetrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/metrics"
)

// MetricsPath is where node agents serve resource metrics, as kubelets do.
const MetricsPath = "/metrics/resource"

// maxConcurrentScrapes bounds the node agents read at once.
const maxConcurrentScrapes = 16

// podKey names a pod in a tenant.
type podKey struct{ tenant, namespace, name string }

// snapshot is what the API serves until the next scrape.
type snapshot struct {
	pods  map[string]map[string]map[string]*metrics.PodMetrics // tenant, namespace, name
	nodes map[string]*metrics.NodeMetrics
}

func (s *snapshot) pod(k podKey) *metrics.PodMetrics { return s.pods[k.tenant][k.namespace][k.name] }

// sample is a cumulative CPU time read at a time.
type sample struct {
	cpu float64
	at  time.Time
}

// endpointState is what one node agent returned last: cumulative samples
// to compute the next rates from, and the figures computed.
type endpointState struct {
	cpu   map[string]sample // series key
	pods  map[podKey]*metrics.PodMetrics
	nodes map[string]*metrics.NodeMetrics
}

// Scraper reads the node agents and keeps the latest usage.
type Scraper struct {
	nodes      corelisters.NodeLister
	client     *http.Client
	resolution time.Duration

	current   atomic.Pointer[snapshot]
	mu        sync.Mutex
	endpoints map[string]*endpointState
}

// NewScraper reads the agents of nodes every resolution through client,
// which must connect as the management plane.
func NewScraper(nodes corelisters.NodeLister, client *http.Client, resolution time.Duration) *Scraper {
	s := &Scraper{nodes: nodes, client: client, resolution: resolution, endpoints: map[string]*endpointState{}}
	s.current.Store(&snapshot{})
	return s
}

// Run scrapes until ctx ends.
func (s *Scraper) Run(ctx context.Context) {
	wait.UntilWithContext(ctx, s.scrape, s.resolution)
}

// nodeEndpoint is where a node's agent listens: its first internal
// address, as the apiserver reaches it for logs.
func nodeEndpoint(n *corev1.Node) string {
	port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port == 0 {
		return ""
	}
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type == t {
				return net.JoinHostPort(a.Address, strconv.Itoa(int(port)))
			}
		}
	}
	return ""
}

func (s *Scraper) scrape(ctx context.Context) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		klog.FromContext(ctx).Error(err, "Listing nodes to scrape")
		return
	}
	// One process may run many (simulated) nodes behind one endpoint.
	endpoints := map[string]bool{}
	for _, n := range nodes {
		if e := nodeEndpoint(n); e != "" {
			endpoints[e] = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.resolution)
	defer cancel()
	results := make(map[string]*endpointState, len(endpoints))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sema = make(chan struct{}, maxConcurrentScrapes)
	)
	for e := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sema <- struct{}{}
			defer func() { <-sema }()
			families, err := s.fetch(ctx, e)
			if err != nil {
				klog.FromContext(ctx).V(2).Info("Reading a node agent's resource metrics", "endpoint", e, "err", err)
				return
			}
			s.mu.Lock()
			prev := s.endpoints[e]
			s.mu.Unlock()
			st := decode(families, prev)
			mu.Lock()
			results[e] = st
			mu.Unlock()
		}()
	}
	wg.Wait()

	s.mu.Lock()
	// An agent that did not answer has no figures: stale usage would
	// mislead an autoscaler more than none.
	s.endpoints = results
	s.mu.Unlock()
	next := &snapshot{pods: map[string]map[string]map[string]*metrics.PodMetrics{}, nodes: map[string]*metrics.NodeMetrics{}}
	for _, st := range results {
		for k, m := range st.pods {
			byNS := next.pods[k.tenant]
			if byNS == nil {
				byNS = map[string]map[string]*metrics.PodMetrics{}
				next.pods[k.tenant] = byNS
			}
			if byNS[k.namespace] == nil {
				byNS[k.namespace] = map[string]*metrics.PodMetrics{}
			}
			byNS[k.namespace][k.name] = m
		}
		for name, m := range st.nodes {
			next.nodes[name] = m
		}
	}
	s.current.Store(next)
}

func (s *Scraper) fetch(ctx context.Context, endpoint string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+endpoint+MetricsPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// value reads a sample whatever type its family declares (or none).
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// decode turns one agent's samples into figures; CPU is the rate since
// prev's sample of the same container (or node), so a container has a
// figure from its second scrape on, and a pod when all its containers do.
func decode(families map[string]*dto.MetricFamily, prev *endpointState) *endpointState {
	st := &endpointState{cpu: map[string]sample{}, pods: map[podKey]*metrics.PodMetrics{}, nodes: map[string]*metrics.NodeMetrics{}}
	type usage struct {
		cpu    *resource.Quantity
		memory *resource.Quantity
		at     time.Time
		window time.Duration
	}
	rate := func(key string, value float64, at time.Time) (*resource.Quantity, time.Duration) {
		st.cpu[key] = sample{cpu: value, at: at}
		if prev == nil {
			return nil, 0
		}
		p, ok := prev.cpu[key]
		if !ok || !at.After(p.at) || value < p.cpu {
			return nil, 0
		}
		window := at.Sub(p.at)
		cores := (value - p.cpu) / window.Seconds()
		return resource.NewScaledQuantity(int64(cores*1e9), resource.Nano), window
	}
	containers := map[podKey]map[string]*usage{}
	nodes := map[string]*usage{}
	get := func(m *dto.Metric) (podKey, string, string, bool) {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		return podKey{l["tenant"], l["namespace"], l["pod"]}, l["container"], l["node"], l["node"] != ""
	}
	at := func(m *dto.Metric) time.Time { return time.UnixMilli(m.GetTimestampMs()) }
	container := func(k podKey, name string) *usage {
		if containers[k] == nil {
			containers[k] = map[string]*usage{}
		}
		if containers[k][name] == nil {
			containers[k][name] = &usage{}
		}
		return containers[k][name]
	}
	node := func(name string) *usage {
		if nodes[name] == nil {
			nodes[name] = &usage{}
		}
		return nodes[name]
	}
	for _, m := range families["container_cpu_usage_seconds_total"].GetMetric() {
		k, c, n, ok := get(m)
		if !ok || k.tenant == "" || k.name == "" || c == "" {
			continue
		}
		u := container(k, c)
		u.cpu, u.window = rate(n+"/"+k.tenant+"/"+k.namespace+"/"+k.name+"/"+c, value(m), at(m))
		u.at = at(m)
	}
	for _, m := range families["container_memory_working_set_bytes"].GetMetric() {
		if k, c, _, ok := get(m); ok {
			container(k, c).memory = resource.NewQuantity(int64(value(m)), resource.BinarySI)
		}
	}
	for _, m := range families["node_cpu_usage_seconds_total"].GetMetric() {
		if _, _, n, ok := get(m); ok {
			u := node(n)
			u.cpu, u.window = rate("node/"+n, value(m), at(m))
			u.at = at(m)
		}
	}
	for _, m := range families["node_memory_working_set_bytes"].GetMetric() {
		if _, _, n, ok := get(m); ok {
			node(n).memory = resource.NewQuantity(int64(value(m)), resource.BinarySI)
		}
	}

pods:
	for k, cs := range containers {
		pm := &metrics.PodMetrics{}
		pm.Name, pm.Namespace = k.name, k.namespace
		for name, u := range cs {
			if u.cpu == nil || u.memory == nil {
				continue pods
			}
			pm.Containers = append(pm.Containers, metrics.ContainerMetrics{Name: name, Usage: corev1.ResourceList{corev1.ResourceCPU: *u.cpu, corev1.ResourceMemory: *u.memory}})
			if u.at.After(pm.Timestamp.Time) {
				pm.Timestamp.Time, pm.Window.Duration = u.at, u.window
			}
		}
		sort.Slice(pm.Containers, func(i, j int) bool { return pm.Containers[i].Name < pm.Containers[j].Name })
		st.pods[k] = pm
	}
	for name, u := range nodes {
		if u.cpu == nil || u.memory == nil {
			continue
		}
		nm := &metrics.NodeMetrics{Usage: corev1.ResourceList{corev1.ResourceCPU: *u.cpu, corev1.ResourceMemory: *u.memory}}
		nm.Name = name
		nm.Timestamp.Time, nm.Window.Duration = u.at, u.window
		st.nodes[name] = nm
	}
	return st
}
