package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	// kubeletSocket is the kubelet's registration socket in Options.Dir.
	kubeletSocket   = "kubelet.sock"
	registerTimeout = 10 * time.Second
)

// serve advertises res until ctx ends: it serves res's socket and
// registers it with the kubelet, and does both again whenever kubelet.sock
// is recreated, since a restarted kubelet forgets its plugins and may
// delete their sockets. kubelet.sock is polled rather than watched with
// inotify: one stat a second is cheap and also sees a directory that is
// itself replaced (a remounted hostPath).
func (p *Plugin) serve(ctx context.Context, res *resource) error {
	logger := p.logger.WithValues("resource", res.name)
	kubelet := filepath.Join(p.opts.Dir, kubeletSocket)
	ep := &endpoint{path: filepath.Join(p.opts.Dir, res.socket), srv: &server{p: p, res: res}}
	defer ep.stop()

	var registered fileID // kubelet.sock we are registered with; zero when none
	fresh := false        // ep was (re)started since the last registration
	lastErr := ""
	ticker := time.NewTicker(p.opts.WatchInterval)
	defer ticker.Stop()
	for {
		id, ok := statSocket(kubelet)
		switch {
		case !ok:
			if registered != (fileID{}) {
				logger.Info("Kubelet registration socket gone; waiting for it", "socket", kubelet)
				registered = fileID{}
			}
		case id != registered || !exists(ep.path):
			if !fresh || !exists(ep.path) {
				if err := ep.start(logger); err != nil {
					return err
				}
				fresh = true
			}
			if err := register(ctx, kubelet, res); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// Logged once per distinct error: the kubelet may take a while.
				if err.Error() != lastErr {
					logger.Error(err, "Registering with the kubelet failed; retrying")
					lastErr = err.Error()
				}
				break
			}
			registered, fresh, lastErr = id, false, ""
			logger.Info("Registered with the kubelet", "socket", kubelet, "endpoint", ep.path, "devices", len(res.ids))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func register(ctx context.Context, kubelet string, res *resource) error {
	conn, err := grpc.NewClient("unix://"+kubelet, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", kubelet, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     res.socket,
		ResourceName: res.name,
		Options:      pluginOptions(),
	})
	if err != nil {
		return fmt.Errorf("registering %s at %s: %w", res.name, kubelet, err)
	}
	return nil
}

// endpoint is the gRPC server on one resource's socket.
type endpoint struct {
	path string
	srv  pluginapi.DevicePluginServer
	grpc *grpc.Server
	done chan struct{}
}

// start (re)starts the server on a new socket.
func (e *endpoint) start(logger klog.Logger) error {
	e.stop()
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing old device plugin socket: %w", err)
	}
	l, err := net.Listen("unix", e.path)
	if err != nil {
		return fmt.Errorf("serving device plugin: %w", err)
	}
	g := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(g, e.srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Serve(l); err != nil {
			logger.Error(err, "Device plugin server failed", "socket", e.path)
		}
	}()
	e.grpc, e.done = g, done
	return nil
}

// stop ends the server, its ListAndWatch streams, and removes its socket.
func (e *endpoint) stop() {
	if e.grpc == nil {
		return
	}
	e.grpc.Stop()
	<-e.done
	e.grpc = nil
	_ = os.Remove(e.path)
}

// fileID tells a recreated file from the old one at the same path.
type fileID struct {
	ino   uint64
	mtime int64
}

func statSocket(path string) (fileID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, false
	}
	id := fileID{mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id, true
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
