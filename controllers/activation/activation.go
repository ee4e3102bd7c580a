package activation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/tenant"
)

// Defaults of Options.
const (
	DefaultQuietPeriod = time.Minute
	DefaultQPS         = 20
	DefaultBurst       = 30
	// retryWake is when a slot whose instance saw a failed API call is
	// woken again after it went to sleep: the default controller rate
	// limiter's longest backoff (1000 s), so that a failing item is retried
	// no later than upstream would.
	retryWake = 1000 * time.Second
	// stopWait bounds how long a stop waits for the instance's Run.
	stopWait = 30 * time.Second
	// builderCount goroutines build woken instances.
	builderCount = 4
)

// Env is what a Spec builds an instance with.
type Env struct {
	// Tenant is the instance's tenant.
	Tenant string
	// Informers is the tenant's view of the shared caches. The activator
	// closes it (removes every handler) when the instance stops.
	Informers *tenantview.Factory
	// Client is a clientset of the tenant's path.
	Client kubernetes.Interface
	// Config and HTTPClient build more clients of the tenant's path
	// (metadata, dynamic); calls through HTTPClient count as the
	// instance's.
	Config     *rest.Config
	HTTPClient *http.Client
}

// Spec is one controller run per tenant.
type Spec struct {
	// Name names the controller in logs and in Awake.
	Name string
	// Watch are the caches whose events may wake a tenant's slot.
	Watch []*crosstenant.Cache
	// Relevant tells whether a change in a tenant may give the controller
	// work: oldObj is nil for an add, newObj nil for a delete (oldObj may
	// then be a cache.DeletedFinalStateUnknown). It runs on a reflector goroutine and
	// must be quick. While the slot is awake, relevant events keep it so.
	Relevant func(tenantName string, oldObj, newObj any) bool
	// Fanout are changes in caches of the management plane (root's nodes)
	// that give work to other tenants: each wakes the tenants it names.
	Fanout []Fanout
	// RootNodes sends the instance's node reads to root's nodes, which
	// every tenant's pods run on, rather than to the tenant's own.
	RootNodes bool
	// Pending tells, at start-up, whether the tenant has work waiting.
	Pending func(tenantName string) bool
	// Keep, if set, keeps an instance awake past its quiet period while it
	// says so: for work that comes from the clock rather than an event
	// (a rollout's progress deadline). It is asked once per sleep check.
	Keep func(tenantName string) bool
	// NextWake, if set, tells when a sleeping tenant next has work that
	// comes from the clock (a CronJob's next run, a finished Job's TTL);
	// zero for none. It is asked at start-up and whenever the slot goes to
	// sleep, and the slot is woken then.
	NextWake func(tenantName string) time.Time
	// QPS and Burst, if set, replace Options' for this controller.
	QPS   float32
	Burst int
	// Build makes the upstream controller; run blocks until ctx ends. ctx
	// is the instance's, ended when it stops.
	Build func(ctx context.Context, env Env) (run func(ctx context.Context), err error)
}

// Fanout wakes the tenants Tenants names for a change in Cache.
type Fanout struct {
	Cache   *crosstenant.Cache
	Tenants func(oldObj, newObj any) []string
}

// Options configure an Activator. Zero fields take the defaults.
type Options struct {
	// Loopback is a privileged config of the apiserver's root; tenant
	// clients address Host + tenant.Path(t) with it. Required.
	Loopback *rest.Config
	// Caches are the running cross-tenant caches views are made of.
	// Required.
	Caches *tenantview.Caches
	// Tenants lists the tenants the start-up sweep asks Pending about.
	// Required.
	Tenants func() []string
	// QuietPeriod stops an instance that saw no relevant event and made no
	// API call for that long. Default DefaultQuietPeriod.
	QuietPeriod time.Duration
	// QPS and Burst limit each instance's client. Default DefaultQPS and
	// DefaultBurst.
	QPS   float32
	Burst int
}

func (o Options) withDefaults() Options {
	if o.QuietPeriod <= 0 {
		o.QuietPeriod = DefaultQuietPeriod
	}
	if o.QPS <= 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	return o
}

// slot names one (controller, tenant).
type slot struct {
	spec   int
	tenant string
}

// instance is an awake slot.
type instance struct {
	slot    slot
	cancel  context.CancelFunc
	done    chan struct{}
	views   *tenantview.Factory
	started time.Time
	// lastEvent and lastCall are UnixNano of the last relevant event and
	// the last API call; failed is set by a failed API call.
	lastEvent atomic.Int64
	lastCall  atomic.Int64
	failed    atomic.Bool
}

func (i *instance) touch() { i.lastEvent.Store(time.Now().UnixNano()) }

// quietSince is when the instance last saw an event or made a call.
func (i *instance) quietSince() time.Time {
	last := max(i.started.UnixNano(), i.lastEvent.Load(), i.lastCall.Load())
	return time.Unix(0, last)
}

// Activator wakes and puts to sleep the (controller, tenant) slots of its
// Specs.
type Activator struct {
	opts  Options
	specs []Spec
	http  *http.Client
	queue workqueue.TypedInterface[slot]

	mu     sync.Mutex
	awake  map[slot]*instance
	timers map[slot]*time.Timer // wakes of sleeping slots (NextWake)

	builds, sleeps atomic.Int64
}

// New returns an Activator of specs.
func New(opts Options, specs ...Spec) (*Activator, error) {
	opts = opts.withDefaults()
	switch {
	case opts.Loopback == nil:
		return nil, errors.New("activation: Options.Loopback is required")
	case opts.Caches == nil:
		return nil, errors.New("activation: Options.Caches is required")
	case opts.Tenants == nil:
		return nil, errors.New("activation: Options.Tenants is required")
	}
	client, err := rest.HTTPClientFor(opts.Loopback)
	if err != nil {
		return nil, fmt.Errorf("building the tenant controllers' HTTP client: %w", err)
	}
	for _, s := range specs {
		if s.Name == "" || s.Relevant == nil || s.Build == nil {
			return nil, fmt.Errorf("activation: spec %q needs a Name, Relevant and Build", s.Name)
		}
	}
	return &Activator{
		opts:   opts,
		specs:  specs,
		http:   client,
		queue:  workqueue.NewTyped[slot](),
		awake:  map[slot]*instance{},
		timers: map[slot]*time.Timer{},
	}, nil
}

// Run waits for the caches, wakes the slots with pending work, then wakes
// and stops slots until ctx ends; it stops every instance before it
// returns.
func (a *Activator) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), a.opts.Caches.HasSynced) {
		return fmt.Errorf("waiting for the cross-tenant caches: %w", ctx.Err())
	}
	// Observers go on after the first list: its adds are not news. What
	// changed between the sync and now, the sweep finds.
	for i, s := range a.specs {
		for _, c := range s.Watch {
			c.Observe(func(t string, oldObj, newObj any) {
				if s.Relevant(t, oldObj, newObj) {
					a.wake(slot{spec: i, tenant: t})
				}
			})
		}
		for _, f := range s.Fanout {
			f.Cache.Observe(func(_ string, oldObj, newObj any) {
				for _, t := range f.Tenants(oldObj, newObj) {
					a.wake(slot{spec: i, tenant: t})
				}
			})
		}
	}
	a.sweep(ctx)

	var wg sync.WaitGroup
	wg.Go(func() { a.sleepIdle(ctx) })
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	logger.Info("Tenant controllers started", "controllers", len(a.specs), "quietPeriod", a.opts.QuietPeriod)
	// A few builders: a burst of wakes (many tenants at once) is not
	// built one by one. The queue never hands one slot to two of them.
	var builders sync.WaitGroup
	for range builderCount {
		builders.Go(func() {
			for {
				s, quit := a.queue.Get()
				if quit {
					return
				}
				a.activate(ctx, s)
				a.queue.Done(s)
			}
		})
	}
	builders.Wait()
	wg.Wait()
	a.mu.Lock()
	all := make([]*instance, 0, len(a.awake))
	for _, inst := range a.awake {
		all = append(all, inst)
	}
	a.awake = map[slot]*instance{}
	for s, t := range a.timers {
		t.Stop()
		delete(a.timers, s)
	}
	a.mu.Unlock()
	for _, inst := range all {
		a.stop(ctx, inst)
	}
	return nil
}

// sweep wakes every slot whose tenant has work pending.
func (a *Activator) sweep(ctx context.Context) {
	woken := 0
	for _, t := range a.opts.Tenants() {
		for i, s := range a.specs {
			if s.Pending != nil && s.Pending(t) {
				a.queue.Add(slot{spec: i, tenant: t})
				woken++
				continue
			}
			a.wakeLater(ctx, slot{spec: i, tenant: t})
		}
	}
	klog.FromContext(ctx).Info("Start-up sweep of tenant controllers", "woken", woken)
}

// wakeLater sets s's timer to its spec's NextWake, if it has one; a time
// past wakes it at once.
func (a *Activator) wakeLater(ctx context.Context, s slot) {
	next := a.specs[s.spec].NextWake
	if next == nil {
		return
	}
	at := next(s.tenant)
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.timers[s]; old != nil {
		old.Stop()
		delete(a.timers, s)
	}
	if at.IsZero() {
		return
	}
	// A second late, so that the controller finds the time has come.
	a.timers[s] = time.AfterFunc(time.Until(at)+time.Second, func() {
		a.mu.Lock()
		delete(a.timers, s)
		a.mu.Unlock()
		if ctx.Err() == nil {
			a.wake(s)
		}
	})
}

// wake keeps s awake, or asks the activator goroutine to build it. It runs
// on reflector goroutines.
func (a *Activator) wake(s slot) {
	if !a.touchIfAwake(s) {
		a.queue.Add(s)
	}
}

// touchIfAwake records an event for s if it is awake, and says whether it is.
func (a *Activator) touchIfAwake(s slot) bool {
	a.mu.Lock()
	inst := a.awake[s]
	a.mu.Unlock()
	if inst != nil {
		inst.touch()
	}
	return inst != nil
}

// activate builds and starts s unless it is awake.
func (a *Activator) activate(ctx context.Context, s slot) {
	if ctx.Err() != nil || a.touchIfAwake(s) {
		return
	}
	spec := a.specs[s.spec]
	logger := klog.FromContext(ctx).WithValues("controller", spec.Name, "tenant", s.tenant)
	inst := &instance{slot: s, done: make(chan struct{}), started: time.Now()}
	env, err := a.env(spec.Name, s.tenant, inst)
	if err != nil {
		logger.Error(err, "Building a tenant controller client")
		return
	}
	inst.views = tenantview.NewDeferredFactory(a.opts.Caches, s.tenant)
	env.Informers, env.Tenant = inst.views, s.tenant
	runCtx, cancel := context.WithCancel(klog.NewContext(ctx, logger))
	run, err := spec.Build(runCtx, env)
	if err != nil {
		cancel()
		inst.views.Close()
		logger.Error(err, "Building a tenant controller")
		return
	}
	inst.cancel = cancel
	a.mu.Lock()
	a.awake[s] = inst
	a.mu.Unlock()
	// Now the handlers hear of the tenant's objects, the one that woke
	// the slot among them.
	inst.views.Start(runCtx.Done())
	a.builds.Add(1)
	wakes.WithLabelValues(spec.Name).Inc()
	awakeInstances.WithLabelValues(spec.Name).Inc()
	go func() {
		defer close(inst.done)
		run(runCtx)
	}()
	logger.V(2).Info("Tenant controller woke")
}

// sleepIdle stops the instances that were quiet for the quiet period.
func (a *Activator) sleepIdle(ctx context.Context) {
	tick := max(a.opts.QuietPeriod/4, 50*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-a.opts.QuietPeriod)
		var quiet []*instance
		a.mu.Lock()
		for _, inst := range a.awake {
			if inst.quietSince().Before(cutoff) {
				quiet = append(quiet, inst)
			}
		}
		a.mu.Unlock()
		// Keep may read caches: asked without the lock.
		var idle []*instance
		for _, inst := range quiet {
			s := inst.slot
			if keep := a.specs[s.spec].Keep; keep != nil && keep(s.tenant) {
				inst.touch()
				continue
			}
			a.mu.Lock()
			if a.awake[s] == inst && inst.quietSince().Before(cutoff) {
				delete(a.awake, s)
				idle = append(idle, inst)
			}
			a.mu.Unlock()
		}
		for _, inst := range idle {
			a.stop(ctx, inst)
			a.sleeps.Add(1)
			sleeps.WithLabelValues(a.specs[inst.slot.spec].Name).Inc()
			a.wakeLater(ctx, inst.slot)
			if inst.failed.Load() {
				s := inst.slot
				time.AfterFunc(retryWake, func() {
					if ctx.Err() == nil {
						a.wake(s)
					}
				})
			}
		}
	}
}

// stop ends inst's Run, then removes its handlers.
func (a *Activator) stop(ctx context.Context, inst *instance) {
	inst.cancel()
	select {
	case <-inst.done:
	case <-time.After(stopWait):
		klog.FromContext(ctx).Info("Tenant controller did not stop in time", "controller", a.specs[inst.slot.spec].Name, "tenant", inst.slot.tenant)
	}
	inst.views.Close()
	awakeInstances.WithLabelValues(a.specs[inst.slot.spec].Name).Dec()
	klog.FromContext(ctx).V(2).Info("Tenant controller went to sleep", "controller", a.specs[inst.slot.spec].Name, "tenant", inst.slot.tenant)
}

// Awake returns the number of awake instances of each controller.
func (a *Activator) Awake() map[string]int {
	out := map[string]int{}
	for _, s := range a.specs {
		out[s.Name] = 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.awake {
		out[a.specs[s.spec].Name]++
	}
	return out
}

// AwakeTenants returns the tenants with an awake instance of the named
// controller, sorted.
func (a *Activator) AwakeTenants(name string) []string {
	a.mu.Lock()
	var out []string
	for s := range a.awake {
		if a.specs[s.spec].Name == name {
			out = append(out, s.tenant)
		}
	}
	a.mu.Unlock()
	sort.Strings(out)
	return out
}

// Stats are counters since New.
type Stats struct{ Builds, Sleeps int64 }

// Stats returns how many instances were built and put to sleep.
func (a *Activator) Stats() Stats {
	return Stats{Builds: a.builds.Load(), Sleeps: a.sleeps.Load()}
}

// env returns clients of tenant t's path for inst: the shared transport, a
// rate limiter of its own, and every call noted in inst.
func (a *Activator) env(name, t string, inst *instance) (Env, error) {
	cfg := rest.CopyConfig(a.opts.Loopback)
	cfg.Host += tenant.Path(t)
	cfg.UserAgent = "kplex-controller-manager/" + name
	qps, burst := a.opts.QPS, a.opts.Burst
	if s := a.specs[inst.slot.spec]; s.QPS > 0 {
		qps, burst = s.QPS, max(s.Burst, 1)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(qps, burst)
	next := a.http.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	if a.specs[inst.slot.spec].RootNodes {
		next = rootNodes{next: next, prefix: tenant.Path(t)}
	}
	hc := &http.Client{
		Transport: callNoter{next: next, inst: inst},
		Timeout:   a.http.Timeout,
	}
	client, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return Env{}, err
	}
	return Env{Client: client, Config: cfg, HTTPClient: hc}, nil
}

// callNoter notes each API call of an instance, and whether one failed in
// a way a retry may fix.
type callNoter struct {
	next http.RoundTripper
	inst *instance
}

func (c callNoter) RoundTrip(req *http.Request) (*http.Response, error) {
	if isDiscovery(req.URL.Path) {
		// Upstream reads discovery on a timer (the garbage collector
		// every 30 s): that is not work, and must not keep it awake.
		return c.next.RoundTrip(req)
	}
	c.inst.lastCall.Store(time.Now().UnixNano())
	resp, err := c.next.RoundTrip(req)
	c.inst.lastCall.Store(time.Now().UnixNano())
	if err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		c.inst.failed.Store(true)
	}
	return resp, err
}

// isDiscovery tells whether path (of a tenant) is a discovery document:
// /api, /api/<v>, /apis, /apis/<g>, /apis/<g>/<v>.
func isDiscovery(path string) bool {
	if _, rest, ok := strings.Cut(strings.TrimPrefix(path, tenant.PathPrefix), "/"); ok && strings.HasPrefix(path, tenant.PathPrefix) {
		path = "/" + rest
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch parts[0] {
	case "api":
		return len(parts) <= 2
	case "apis":
		return len(parts) <= 3
	}
	return false
}

// rootNodes sends a tenant client's node requests to root's nodes.
type rootNodes struct {
	next   http.RoundTripper
	prefix string // the tenant's path
}

func (r rootNodes) RoundTrip(req *http.Request) (*http.Response, error) {
	if rest, ok := strings.CutPrefix(req.URL.Path, r.prefix+"/api/v1/nodes"); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
		req = req.Clone(req.Context())
		req.URL.Path = "/api/v1/nodes" + rest
		req.URL.RawPath = ""
	}
	return r.next.RoundTrip(req)
}
