package nodeagent

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/nodeagent/runtime/simulated"
	"github.com/kplex/kplex/tenant"
	"github.com/kplex/kplex/tenant/nodeconn"
)

// The kubelet's resource metrics (/metrics/resource), which the apiserver
// reads to serve metrics.k8s.io. Every sample names its node, since one
// process may run many simulated nodes, and a container's its tenant.
var (
	containerCPU = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds",
		[]string{"container", "pod", "namespace", "tenant", "node"}, nil)
	containerMemory = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes",
		[]string{"container", "pod", "namespace", "tenant", "node"}, nil)
	nodeCPU = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", []string{"node"}, nil)
	nodeMemory = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", []string{"node"}, nil)
)

// usageCollector reads the runtime's container stats at each scrape.
type usageCollector struct{ agents []*Agent }

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{containerCPU, containerMemory, nodeCPU, nodeMemory} {
		ch <- d
	}
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range c.agents {
		if err := a.collectUsage(ctx, ch); err != nil {
			klog.FromContext(ctx).Error(err, "Reading container stats", "node", a.name)
		}
	}
}

// collectUsage sends the usage of the node's running containers (init
// containers excepted) and of the node itself.
func (a *Agent) collectUsage(ctx context.Context, ch chan<- prometheus.Metric) error {
	rt := a.runtime.Service
	onNode := map[string]string{labelNode: a.name}
	running, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: onNode,
	})
	if err != nil {
		return err
	}
	live := make(map[string]bool, len(running))
	for _, c := range running {
		live[c.Id] = true
	}
	stats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: onNode})
	if err != nil {
		return err
	}
	var cpuSum float64
	var memSum uint64
	latest := time.Now()
	for _, s := range stats {
		attrs := s.GetAttributes()
		l := attrs.GetLabels()
		if !live[attrs.GetId()] || l[labelInit] == "true" || s.GetCpu().GetUsageCoreNanoSeconds() == nil {
			continue
		}
		labels := []string{l[labelContainer], l[labelPodName], l[labelPodNamespace], l[labelTenant], a.name}
		at := time.Unix(0, s.GetCpu().GetTimestamp())
		cpu := float64(s.GetCpu().GetUsageCoreNanoSeconds().GetValue()) / 1e9
		ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerCPU, prometheus.CounterValue, cpu, labels...))
		mem := s.GetMemory().GetWorkingSetBytes().GetValue()
		ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerMemory, prometheus.GaugeValue, float64(mem), labels...))
		cpuSum += cpu
		memSum += mem
		latest = at
	}
	// A simulated node uses what its containers use; a real one what the
	// host does.
	if a.runtime.Scheme != simulated.RuntimeName {
		cpu, mem, err := hostUsage()
		if err != nil {
			return err
		}
		cpuSum, memSum, latest = cpu, mem, time.Now()
	}
	ch <- prometheus.NewMetricWithTimestamp(latest, prometheus.MustNewConstMetric(nodeCPU, prometheus.CounterValue, cpuSum, a.name))
	ch <- prometheus.NewMetricWithTimestamp(latest, prometheus.MustNewConstMetric(nodeMemory, prometheus.GaugeValue, float64(memSum), a.name))
	return nil
}

// userHZ is the unit of /proc/stat's times on Linux.
const userHZ = 100

// hostUsage reads the host's CPU time in core-seconds (all but idle and
// iowait) and its working set (total memory less what is available).
func hostUsage() (cpu float64, memory uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, v := range fields[1:] {
			// user nice system idle iowait irq softirq steal
			if i == 3 || i == 4 || i > 7 {
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			cpu += float64(n) / userHZ
		}
	}
	total, available := meminfo("MemTotal"), meminfo("MemAvailable")
	if total > available {
		memory = uint64(total - available)
	}
	return cpu, memory, nil
}

// resourceMetrics serves the collector to the apiserver's management-plane
// connections only: it names every tenant's pods.
func (s *server) resourceMetrics() http.Handler {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(usageCollector{agents: s.agents})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _ := r.Context().Value(tenantKey{}).(*nodeconn.Conn)
		if conn == nil || conn.Tenant() != tenant.Root {
			http.Error(w, "resource metrics name every tenant's pods: the management plane's only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
