package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"k8s.io/klog/v2"
)

const (
	// upstreamTimeout bounds one exchange with one upstream, so a dead
	// upstream costs a client at most this much per upstream.
	upstreamTimeout = 2 * time.Second
	// shutdownTimeout bounds how long Close waits for queries in flight.
	shutdownTimeout = 5 * time.Second
)

// Server answers DNS queries for every tenant's pods on a node. Create it
// with New; use it as a dns.Handler, or Start it on its Addresses.
type Server struct {
	cfg    Config
	zone   string // the cluster domain, fully qualified and lower-case
	serial uint32 // the SOA serial: when the server was made
	// upstreamTimeout is a field so tests can shorten it.
	upstreamTimeout time.Duration

	mu      sync.Mutex
	logger  klog.Logger
	started bool
	servers []*dns.Server
	addrs   []string
	errc    chan error

	// base ends with Close: it bounds forwarding still in flight.
	base      context.Context
	stop      context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var _ dns.Handler = (*Server)(nil)

// New checks cfg, fills its defaults and returns a Server that is not yet
// listening. Errors name the Config field at fault.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid DNS server config: %w", err)
	}
	base, stop := context.WithCancel(context.Background())
	return &Server{
		base:            base,
		stop:            stop,
		cfg:             cfg,
		zone:            dns.Fqdn(cfg.ClusterDomain),
		serial:          uint32(time.Now().Unix()),
		upstreamTimeout: upstreamTimeout,
		logger:          klog.Background().WithName("dns"),
		errc:            make(chan error, 2*len(cfg.Addresses)),
	}, nil
}

// Start binds every address on UDP and TCP and serves them in the
// background. When it returns nil the server is answering; when it returns
// an error nothing is left open. Serving stops when ctx ends or Close is
// called; failures after Start arrive on Err.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("DNS server already started")
	}
	if s.base.Err() != nil {
		return errors.New("DNS server closed")
	}
	s.started = true
	s.logger = klog.FromContext(ctx).WithName("dns")

	var servers []*dns.Server
	var addrs []string
	for _, addr := range s.cfg.Addresses {
		pc, ln, err := listen(ctx, addr)
		if err != nil {
			for _, srv := range servers {
				closeUnstarted(srv)
			}
			return err
		}
		addrs = append(addrs, ln.Addr().String())
		servers = append(servers,
			// UDPSize is the read buffer: EDNS0 queries may exceed 512 bytes.
			&dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.DefaultMsgSize},
			&dns.Server{Listener: ln, Handler: s})
	}

	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		started := sync.OnceFunc(wg.Done)
		srv.NotifyStartedFunc = started
		go func() {
			err := srv.ActivateAndServe()
			started() // a server that failed to start must not block Start
			select {
			case <-s.base.Done():
			default:
				if err != nil {
					s.errc <- fmt.Errorf("serving DNS on %s: %w", endpoint(srv), err)
				}
			}
		}()
	}
	// Close can only shut down servers that have started.
	wg.Wait()
	s.servers, s.addrs = servers, addrs
	s.logger.Info("Serving cluster DNS", "addresses", addrs, "clusterDomain", s.cfg.ClusterDomain, "upstreams", s.cfg.Upstreams)

	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.base.Done():
		}
	}()
	return nil
}

// Addrs returns the addresses the server listens on, each on UDP and TCP,
// with port 0 replaced by the port it got. Empty before Start.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// Err delivers errors that stop a listener after Start.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the listeners, waits a few seconds for queries in flight and
// cancels forwarding still going on. It may be called more than once and
// returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.mu.Lock()
		servers := s.servers
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stopping DNS on %s: %w", endpoint(srv), err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Run starts the server and serves until ctx ends or a listener fails.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.Err():
	}
	return errors.Join(err, s.Close())
}

// listen binds addr on UDP and TCP. With port 0 it asks for UDP's port on
// TCP too, so one address serves both, and retries when TCP's is taken.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listening for DNS on udp %s: %w", addr, err)
		}
		udpPort := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(udpPort)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt == 10 {
			return nil, nil, fmt.Errorf("listening for DNS on tcp %s: %w", addr, err)
		}
	}
}

// closeUnstarted releases the sockets of a server never activated.
func closeUnstarted(srv *dns.Server) {
	if srv.PacketConn != nil {
		srv.PacketConn.Close()
	}
	if srv.Listener != nil {
		srv.Listener.Close()
	}
}

func endpoint(srv *dns.Server) string {
	if srv.PacketConn != nil {
		return "udp " + srv.PacketConn.LocalAddr().String()
	}
	return "tcp " + srv.Listener.Addr().String()
}
