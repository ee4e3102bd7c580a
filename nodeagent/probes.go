package nodeagent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// probeState is what the agent remembers of one container instance's
// probes.
type probeState struct {
	containerID string
	started     bool // the startup probe passed, or there is none
	ready       bool
	results     map[string]*probeResult // by kind
}

type probeResult struct {
	successes, failures int32
	next                time.Time
}

const (
	probeStartup   = "startup"
	probeLiveness  = "liveness"
	probeReadiness = "readiness"
)

// probe runs the container's due probes. A failed liveness or startup probe
// stops the container, which restarts per restartPolicy; the readiness
// result is the container's ready status. It reports whether it acted.
func (w *podWorker) probe(ctx context.Context, pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus) bool {
	ps := w.probes[c.Name]
	if ps == nil || ps.containerID != st.Id {
		ps = &probeState{containerID: st.Id, started: c.StartupProbe == nil, ready: c.ReadinessProbe == nil, results: map[string]*probeResult{}}
		w.probes[c.Name] = ps
	}
	started := time.Unix(0, st.StartedAt)
	if !ps.started {
		ok, done := w.runProbe(ctx, pod, c, st, probeStartup, c.StartupProbe, started)
		if done && ok {
			ps.started = true
		} else if done {
			return w.killForProbe(ctx, pod, c, st, probeStartup)
		}
		return false
	}
	if c.LivenessProbe != nil {
		if ok, done := w.runProbe(ctx, pod, c, st, probeLiveness, c.LivenessProbe, started); done && !ok {
			return w.killForProbe(ctx, pod, c, st, probeLiveness)
		}
	}
	if c.ReadinessProbe != nil {
		if ok, done := w.runProbe(ctx, pod, c, st, probeReadiness, c.ReadinessProbe, started); done {
			ps.ready = ok
		}
	}
	return false
}

func (w *podWorker) killForProbe(ctx context.Context, pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus, kind string) bool {
	klog.FromContext(ctx).Info("Container failed its probe, stopping it", "container", c.Name, "probe", kind)
	grace := int64(v1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	grace = w.preStop(ctx, pod, c.Name, st.Id, grace)
	_ = w.agent.runtime.Service.StopContainer(ctx, st.Id, grace)
	delete(w.probes, c.Name)
	return true
}

// runProbe runs the probe if it is due. done says a threshold was crossed;
// ok which one: successThreshold successes or failureThreshold failures.
func (w *podWorker) runProbe(ctx context.Context, pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus, kind string, p *v1.Probe, started time.Time) (ok, done bool) {
	ps := w.probes[c.Name]
	r := ps.results[kind]
	now := time.Now()
	if r == nil {
		r = &probeResult{next: started.Add(time.Duration(p.InitialDelaySeconds) * time.Second)}
		ps.results[kind] = r
	}
	if now.Before(r.next) {
		return false, false
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	r.next = now.Add(period)
	err := w.runHandler(ctx, pod, c, st, p)
	success, failure := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	if kind != probeReadiness {
		success = 1
	}
	if err == nil {
		r.successes++
		r.failures = 0
		return true, r.successes >= success
	}
	klog.FromContext(ctx).V(2).Info("Probe failed", "container", c.Name, "probe", kind, "err", err)
	r.failures++
	r.successes = 0
	return false, r.failures >= failure
}

// podAddress is where a probe without a host reaches the pod, as the
// kubelet's: its own IP, which is the node's on the node's network.
func (w *podWorker) podAddress(pod *v1.Pod) string {
	if ips := w.ips(pod); len(ips) > 0 {
		return ips[0].IP
	}
	return w.agent.cfg.NodeIP
}

func (w *podWorker) runHandler(ctx context.Context, pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus, p *v1.Probe) error {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	if p.Exec == nil && w.agent.runtime.Scheme == simulated.RuntimeName {
		return nil // a simulated container listens nowhere; its probes pass
	}
	switch {
	case p.Exec != nil:
		_, _, err := w.agent.runtime.Service.ExecSync(ctx, st.Id, p.Exec.Command, timeout)
		return err
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := portOf(g.Port, c)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = w.podAddress(pod)
		}
		scheme := "http"
		if g.Scheme == v1.URISchemeHTTPS {
			scheme = "https"
		}
		u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: g.Path}
		reqCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return httpStatusError(resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := portOf(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = w.podAddress(pod)
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	case p.GRPC != nil:
		host := w.podAddress(pod)
		conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(int(p.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		reqCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(reqCtx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC probe: service %q is %s", service, resp.Status)
		}
		return nil
	}
	return nil
}

// probeClient follows no redirects to other hosts and keeps no connections:
// probes are independent, as the kubelet's.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func portOf(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

// httpStatusError is an HTTP handler's answer outside 200-399: a failed
// probe, but a hook that ran (the kubelet's hooks fail on no answer only).
type httpStatusError int

func (e httpStatusError) Error() string {
	return fmt.Sprintf("HTTP probe failed with statuscode: %d", int(e))
}
