package nodeagent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
	streaming "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/kplex/kplex/tenant/nodeconn"
)

// server is the agent's kubelet API for the apiserver: container logs and
// exec, for pods of the tenant the apiserver names on the connection.
type server struct {
	cfg    *Config
	agents []*Agent
}

func newServer(cfg *Config, agents []*Agent) (*server, error) {
	if cfg.Listener != nil {
		cfg.Port = cfg.Listener.Addr().(*net.TCPAddr).Port
	}
	if cfg.Port != 0 && cfg.ClientCAFile == "" {
		return nil, errors.New("--client-ca-file is required: the agent serves logs and exec to the apiserver only, known by its client certificate (or --port=0 to serve nothing)")
	}
	return &server{cfg: cfg, agents: agents}, nil
}

type tenantKey struct{}

func (s *server) serve(ctx context.Context) error {
	if s.cfg.Port == 0 && s.cfg.Listener == nil {
		return nil
	}
	// Listen before anything else: the node's port is published at
	// registration, and the apiserver may call it at once.
	l := s.cfg.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))); err != nil {
			return fmt.Errorf("listening on --port %d: %w", s.cfg.Port, err)
		}
	}
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		l.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.logs)
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", s.exec)
	mux.Handle("GET /metrics/resource", s.resourceMetrics())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				if pc, ok := tc.NetConn().(*nodeconn.Conn); ok {
					return context.WithValue(ctx, tenantKey{}, pc)
				}
			}
			return ctx
		},
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(tls.NewListener(nodeconn.NewListener(l), tlsConfig))
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// tlsConfig accepts only clients whose certificate the apiserver's kubelet
// client CA signed.
func (s *server) tlsConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(s.cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading --client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("--client-ca-file %s holds no certificate", s.cfg.ClientCAFile)
	}
	var pair tls.Certificate
	if s.cfg.TLSCertFile != "" {
		pair, err = tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSPrivateKeyFile)
	} else {
		pair, err = selfSigned(s.cfg.NodeName, s.cfg.NodeIP)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the serving certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		// The CA signs users' certificates too: only the apiserver's may
		// name a tenant here.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != nodeconn.ClientName {
				return fmt.Errorf("client certificate is not the apiserver's (%s)", nodeconn.ClientName)
			}
			return nil
		},
	}, nil
}

// find returns the worker of a tenant's pod on one of this process's nodes.
func (s *server) find(r *http.Request) (*podWorker, *v1.Pod, error) {
	conn, _ := r.Context().Value(tenantKey{}).(*nodeconn.Conn)
	if conn == nil || conn.Tenant() == "" {
		return nil, nil, errors.New("the connection names no tenant")
	}
	tenantName := conn.Tenant()
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	for _, a := range s.agents {
		a.mu.Lock()
		for _, w := range a.workers {
			if pod, gone := w.latest(); !gone && w.tenant == tenantName && pod.Namespace == ns && pod.Name == name {
				a.mu.Unlock()
				return w, pod, nil
			}
		}
		a.mu.Unlock()
	}
	return nil, nil, fmt.Errorf("pod %s/%s not found on this node", ns, name)
}

// containerID returns the id of the container's latest (or previous)
// instance.
func (w *podWorker) containerID(ctx context.Context, container string, previous bool) (*runtimeapi.ContainerStatus, error) {
	obs, err := w.observe(ctx)
	if err != nil {
		return nil, err
	}
	st := obs.latest(container)
	if previous {
		st = obs.previous(container)
	}
	if st == nil {
		if previous {
			return nil, fmt.Errorf("previous terminated container %q not found", container)
		}
		return nil, fmt.Errorf("container %q is not running or waiting to start", container)
	}
	return st, nil
}

func (s *server) logs(rw http.ResponseWriter, r *http.Request) {
	w, _, err := s.find(r)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	previous := q.Get("previous") == "true"
	opts := &logs.LogOptions{Follow: q.Get("follow") == "true", Timestamp: q.Get("timestamps") == "true"}
	var sinceSeconds *int64
	for key, dst := range map[string]**int64{"tailLines": &opts.TailLines, "limitBytes": &opts.LimitBytes, "sinceSeconds": &sinceSeconds} {
		if v := q.Get(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				http.Error(rw, fmt.Sprintf("%s: %v", key, err), http.StatusBadRequest)
				return
			}
			*dst = &n
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(rw, fmt.Sprintf("sinceTime: %v", err), http.StatusBadRequest)
			return
		}
		opts.Since = t
	}
	if sinceSeconds != nil {
		opts.Since = time.Now().Add(-time.Duration(*sinceSeconds) * time.Second)
	}
	st, err := w.containerID(r.Context(), r.PathValue("container"), previous)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	rw.Header().Set("Content-Type", "text/plain")
	out := flushWriter{rw}
	if err := logs.ReadLogs(r.Context(), st.LogPath, st.Id, opts, w.agent.runtime.Service, out, out); err != nil && r.Context().Err() == nil {
		klog.FromContext(r.Context()).V(2).Info("Reading logs", "err", err)
	}
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func (s *server) exec(rw http.ResponseWriter, r *http.Request) {
	w, pod, err := s.find(r)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusNotFound)
		return
	}
	opts, err := streaming.NewOptions(r)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	container := r.PathValue("container")
	cmd := r.URL.Query()["command"]
	streaming.ServeExec(rw, r, &executor{w: w}, pod.Name, string(pod.UID), container, cmd, opts, 4*time.Hour, 30*time.Second, streaming.SupportedStreamingProtocols)
}

// executor runs a command in a container through CRI: ExecSync when nothing
// is interactive, else the runtime's streaming server.
type executor struct{ w *podWorker }

func (e *executor) ExecInContainer(ctx context.Context, _ string, _ string, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize, timeout time.Duration) error {
	st, err := e.w.containerID(ctx, container, false)
	if err != nil {
		return err
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s is not running", container)
	}
	rt := e.w.agent.runtime.Service
	if in == nil && !tty {
		stdout, stderr, err := rt.ExecSync(ctx, st.Id, cmd, timeout)
		if out != nil {
			_, _ = out.Write(stdout)
		}
		if errw != nil {
			_, _ = errw.Write(stderr)
		}
		return exitError(err)
	}
	resp, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: st.Id, Cmd: cmd, Tty: tty, Stdin: in != nil, Stdout: out != nil, Stderr: errw != nil && !tty})
	if err != nil {
		return err
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		return fmt.Errorf("the runtime's exec URL: %w", err)
	}
	exec, err := remotecommand.NewSPDYExecutor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, http.MethodPost, u)
	if err != nil {
		return err
	}
	var sizes remotecommand.TerminalSizeQueue
	if resize != nil {
		sizes = resizeQueue(resize)
	}
	opts := remotecommand.StreamOptions{Stdin: in, Tty: tty, TerminalSizeQueue: sizes}
	if out != nil {
		opts.Stdout = out
	}
	if errw != nil && !tty {
		opts.Stderr = errw
	}
	return exitError(exec.StreamWithContext(ctx, opts))
}

type resizeQueue <-chan streaming.TerminalSize

func (q resizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
}

// exitError turns a command's non-zero exit into the error the streaming
// protocol reports as an exit code.
func exitError(err error) error {
	if err == nil {
		return nil
	}
	var code interface{ ExitStatus() int }
	if errors.As(err, &code) {
		return utilexec.CodeExitError{Err: err, Code: code.ExitStatus()}
	}
	if msg := err.Error(); strings.Contains(msg, "command terminated with non-zero exit code") {
		return utilexec.CodeExitError{Err: err, Code: 1}
	}
	return err
}

// readPreamble is used in tests to check framing.
var _ = bufio.NewReader

// selfSigned makes the serving certificate when none is given, as the
// kubelet does. ECDSA, not client-go's RSA helper: two RSA keys take
// seconds on a busy machine, and the port is closed meanwhile.
func selfSigned(nodeName, nodeIP string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName},
		DNSNames:     []string{nodeName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(nodeIP); ip != nil {
		template.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
