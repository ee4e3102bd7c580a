package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/etcd"
	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/server"
)

// serveEtcd runs an embedded etcd until killed, laid out in dir as in a
// kplex data directory (data in etcd/, certificates in pki/); the first line
// it prints is its client URL.
func serveEtcd(dir string) error {
	e, err := etcd.Start(context.Background(), filepath.Join(dir, "etcd"), server.PKIFiles(dir))
	if err != nil {
		return err
	}
	fmt.Println(e.ClientURL())
	return <-e.Err()
}

// startEtcd starts an embedded etcd in this process, laid out in dir as
// serveEtcd does, and returns it with the apiserver flags that reach it.
func startEtcd(ctx context.Context, dir string) (*etcd.Embedded, []string, error) {
	files := server.PKIFiles(dir)
	e, err := etcd.Start(ctx, filepath.Join(dir, "etcd"), files)
	if err != nil {
		return nil, nil, err
	}
	return e, etcdFlags(e.ClientURL(), files), nil
}

// etcdFlags point an apiserver at the embedded etcd at url: it serves only
// clients with a certificate of its own CA.
func etcdFlags(url string, files pki.Files) []string {
	return []string{"--etcd-servers", url, "--etcd-cafile", files.EtcdCACert(),
		"--etcd-certfile", files.EtcdClientCert(), "--etcd-keyfile", files.EtcdClientKey()}
}

// process is a child process the bench measures.
type process struct {
	cmd *exec.Cmd
	log *os.File
}

func start(logPath, name string, args ...string) (*process, error) {
	return startCommand(logPath, exec.Command(name, args...))
}

// startCommand starts cmd with its output in logPath.
func startCommand(logPath string, cmd *exec.Cmd) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	return &process{cmd: cmd, log: log}, nil
}

func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

// rss is the process's resident set size in bytes.
func (p *process) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", p.cmd.Process.Pid)
}

// startEtcdChild runs `bench --run-etcd dir` and returns it with its URL.
func startEtcdChild(dir, logPath string) (*process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "--run-etcd", dir)
	log, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, "", fmt.Errorf("etcd child printed no URL: %w", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return &process{cmd: cmd, log: log}, strings.TrimSpace(line), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// controlPlane is an apiserver the bench started, and its etcd when the
// bench started that as a child too.
type controlPlane struct {
	etcd, apiserver *process
	admin           *rest.Config
}

func (c *controlPlane) stop() {
	c.apiserver.stop() // before its etcd, so it waits on no gone etcd
	c.etcd.stop()
}

// startKplexAPIServer starts bin/kplex-apiserver with its data in dataDir
// over the etcd etcdFlags name, with extra flags; it does not wait for it
// to be ready.
func startKplexAPIServer(binDir, dataDir, logPath string, etcdFlags []string, extra ...string) (*controlPlane, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append(append([]string{"--data-dir", dataDir, "--secure-port", strconv.Itoa(port)}, etcdFlags...), extra...)
	apiserver, err := start(logPath, filepath.Join(binDir, "kplex-apiserver"), args...)
	if err != nil {
		return nil, err
	}
	return &controlPlane{apiserver: apiserver, admin: server.PKIFiles(dataDir).AdminConfig("https://127.0.0.1:" + strconv.Itoa(port))}, nil
}

// startDedicated starts a dedicated control plane in dir: an etcd child
// and bin/kube-apiserver with the PKI kplex would make, and extra flags;
// it does not wait for it to be ready.
func startDedicated(binDir, dir string, extra ...string) (*controlPlane, error) {
	files := server.PKIFiles(dir)
	if err := pki.Ensure(files, nil); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	etcdProc, etcdURL, err := startEtcdChild(dir, filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	args := append(append(etcdFlags(etcdURL, files), "--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1",
		"--tls-cert-file", files.ServingCert(), "--tls-private-key-file", files.ServingKey(), "--client-ca-file", files.CACert(),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", files.ServiceAccountKey(), "--service-account-signing-key-file", files.ServiceAccountKey(),
		"--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.96.0.0/12"), extra...)
	apiserver, err := start(filepath.Join(dir, "kube-apiserver.log"), filepath.Join(binDir, "kube-apiserver"), args...)
	if err != nil {
		etcdProc.stop()
		return nil, err
	}
	return &controlPlane{etcd: etcdProc, apiserver: apiserver, admin: files.AdminConfig("https://127.0.0.1:" + strconv.Itoa(port))}, nil
}
