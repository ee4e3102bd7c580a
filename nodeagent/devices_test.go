package nodeagent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

const widget = "example.com/widget"

// widgetPlugin is a device plugin with two healthy widgets; Allocate hands
// their IDs to the container in WIDGETS.
type widgetPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	server *grpc.Server
}

func (p *widgetPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *widgetPlugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	devs := []*pluginapi.Device{{ID: "w0", Health: pluginapi.Healthy}, {ID: "w1", Health: pluginapi.Healthy}}
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *widgetPlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerAllocateResponse{Envs: map[string]string{"WIDGETS": strings.Join(c.DevicesIds, ",")}})
	}
	return out, nil
}

// startWidgetPlugin serves the plugin in dir and registers it with the
// agent's registration socket there.
func startWidgetPlugin(t *testing.T, dir string) *widgetPlugin {
	t.Helper()
	sock := filepath.Join(dir, "widget.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &widgetPlugin{server: grpc.NewServer()}
	pluginapi.RegisterDevicePluginServer(p.server, p)
	go func() { _ = p.server.Serve(l) }()
	t.Cleanup(p.server.Stop)
	eventually(t, "registered with the agent", func() (bool, error) {
		conn, err := grpc.NewClient("unix://"+filepath.Join(dir, pluginapi.KubeletSocket[strings.LastIndex(pluginapi.KubeletSocket, "/")+1:]), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "widget.sock", ResourceName: widget})
		return err == nil, err
	})
	return p
}

func widgetPod(name string) *v1.Pod {
	p := pod(name, "node-1", v1.RestartPolicyAlways, nil)
	p.Spec.Containers[0].Env = nil
	p.Spec.Containers[0].Resources.Limits = v1.ResourceList{widget: resource.MustParse("1")}
	return p
}

// widgetsOf returns the WIDGETS env of a pod's running container.
func widgetsOf(t *testing.T, rt *simulated.Runtime, c kubernetes.Interface, name string) string {
	t.Helper()
	p := waitPhase(t, c, name, v1.PodRunning)
	id := containerID(p.Status.ContainerStatuses[0].ContainerID)
	cfg := rt.ContainerConfig(id)
	if cfg == nil {
		t.Fatalf("pod %s: no container %s in the runtime", name, id)
	}
	for _, kv := range cfg.Envs {
		if kv.Key == "WIDGETS" {
			return string(kv.Value)
		}
	}
	return ""
}

func containerID(s string) string {
	_, id, _ := strings.Cut(s, "://")
	return id
}

// TestIntegrationDevicePluginsThroughTheAgent: a device plugin registers
// on the agent's socket; the node advertises its devices; pods get
// distinct devices with the plugin's env; a pod that finds none left fails
// as at the kubelet; after a plugin restart, devices in use stay with
// their pods.
func TestIntegrationDevicePluginsThroughTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "")
	env.RunControllers(t)
	a := servertest.Client(t, env.CreateTenant(t, "a"))
	root := servertest.Client(t, env.Admin)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rt := simulated.New()
	labelsDir := t.TempDir()
	startAgent(t, env, "node-1", rt, func(c *Config) { c.DevicePluginDir = dir; c.NodeLabelsDir = labelsDir })
	plugin := startWidgetPlugin(t, dir)
	eventually(t, "node advertises 2 widgets", func() (bool, error) {
		n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		q := n.Status.Allocatable[widget]
		return q.Value() == 2, fmt.Errorf("allocatable %v", n.Status.Allocatable)
	})

	// Feature labels from a file in --node-labels-dir join the node's, and
	// leave with their line; the node's other labels stay.
	labelsFile := filepath.Join(labelsDir, "widgets")
	if err := os.WriteFile(labelsFile, []byte("# from a feature discovery\nexample.com/widget.product=W-1000\nexample.com/widget.count=2\nnot a label\nkplex.io/pool=stolen\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodeLabels := func() map[string]string {
		n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Labels
	}
	eventually(t, "labels from the file", func() (bool, error) {
		l := nodeLabels()
		return l["example.com/widget.product"] == "W-1000" && l["example.com/widget.count"] == "2", fmt.Errorf("%v", l)
	})
	if pool, ok := nodeLabels()["kplex.io/pool"]; ok {
		t.Errorf("a label file put the node in pool %q: kplex.io/ labels are not a file's to set", pool)
	}
	if err := os.WriteFile(labelsFile, []byte("example.com/widget.product=W-1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a removed line's label gone", func() (bool, error) {
		l := nodeLabels()
		_, has := l["example.com/widget.count"]
		return !has && l["example.com/widget.product"] == "W-1000" && l["kubernetes.io/hostname"] == "node-1", fmt.Errorf("%v", l)
	})

	for _, name := range []string{"p1", "p2", "p3"} {
		if _, err := a.CoreV1().Pods("default").Create(ctx, widgetPod(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if name == "p2" {
			break
		}
	}
	w1, w2 := widgetsOf(t, rt, a, "p1"), widgetsOf(t, rt, a, "p2")
	if w1 == "" || w2 == "" || w1 == w2 {
		t.Fatalf("widgets of p1 %q and p2 %q: want one each, distinct", w1, w2)
	}
	if _, err := a.CoreV1().Pods("default").Create(ctx, widgetPod("p3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p3 := waitPhase(t, a, "p3", v1.PodFailed)
	if p3.Status.Reason != "UnexpectedAdmissionError" || !strings.Contains(p3.Status.Message, widget) {
		t.Errorf("p3 failed with %q: %q; want UnexpectedAdmissionError naming %s", p3.Status.Reason, p3.Status.Message, widget)
	}

	// The plugin restarts: p1 keeps its widget; p2's goes to p4 once p2 is gone.
	plugin.server.Stop()
	startWidgetPlugin(t, dir)
	if err := a.CoreV1().Pods("default").Delete(ctx, "p2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "p2 gone and widgets back", func() (bool, error) {
		_, err := a.CoreV1().Pods("default").Get(ctx, "p2", metav1.GetOptions{})
		return err != nil, nil
	})
	if _, err := a.CoreV1().Pods("default").Create(ctx, widgetPod("p4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w4 := widgetsOf(t, rt, a, "p4"); w4 != w2 {
		t.Errorf("p4 got widget %q, want p2's freed %q (p1 holds %q)", w4, w2, w1)
	}
	if again := widgetsOf(t, rt, a, "p1"); again != w1 {
		t.Errorf("p1's widget changed from %q to %q", w1, again)
	}
}
