package server

import (
	"fmt"
	"time"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/registry/core/rangeallocation"
	"k8s.io/kubernetes/pkg/registry/core/service/allocator"
	serviceallocator "k8s.io/kubernetes/pkg/registry/core/service/allocator/storage"
	"k8s.io/kubernetes/pkg/registry/core/service/portallocator"
	portallocatorcontroller "k8s.io/kubernetes/pkg/registry/core/service/portallocator/controller"

	"github.com/kplex/kplex/client/crosstenant"
)

// nodePortRepair runs upstream's node port repair loop over every tenant's
// Services. Node ports are the nodes', which every tenant shares, so one
// range serves all tenants; its allocation record must exist before any
// Service of type NodePort can be created, and only the repair loop writes
// it. Upstream's loop (off with the cluster IP one, see partition) reads
// root's Services alone and would free every tenant's ports; this one
// reads them across tenants.
func (s *Server) nodePortRepair(generic *genericapiserver.GenericAPIServer, c app.CompletedConfig) error {
	storageConfig, err := c.KubeAPIs.ControlPlane.Extra.StorageFactory.NewConfig(api.Resource("services"), &api.Service{})
	if err != nil {
		return fmt.Errorf("node port allocation storage: %w", err)
	}
	var registry rangeallocation.RangeRegistry
	ports := c.KubeAPIs.Extra.ServiceNodePortRange
	// The same record upstream's allocator reads and writes.
	if _, err := portallocator.New(ports, func(max int, rangeSpec string, offset int) (allocator.Interface, error) {
		etcd, err := serviceallocator.NewEtcd(allocator.NewAllocationMapWithOffset(max, rangeSpec, offset), "/ranges/servicenodeports", storageConfig.ForResource(api.Resource("servicenodeportallocations")))
		registry = etcd
		return etcd, err
	}); err != nil {
		return fmt.Errorf("node port allocation storage: %w", err)
	}
	interval := c.KubeAPIs.Extra.RepairServicesInterval
	return generic.AddPostStartHook("kplex-service-nodeport-repair", func(hook genericapiserver.PostStartHookContext) error {
		cross, err := kubernetes.NewForConfig(crosstenant.Config(hook.LoopbackClientConfig))
		if err != nil {
			return err
		}
		root, err := kubernetes.NewForConfig(hook.LoopbackClientConfig)
		if err != nil {
			return err
		}
		// Until the first repair writes the range's record, every NodePort
		// Service is refused; upstream's loop retries only after its full
		// interval (minutes), so the first one retries every second, and
		// the server is not ready before it succeeds, as upstream's is not.
		first, firstStop := make(chan struct{}), make(chan struct{})
		go portallocatorcontroller.NewRepair(time.Second, cross.CoreV1(), root.EventsV1(), ports, registry).RunUntil(func() { close(first) }, firstStop)
		select {
		case <-first:
			close(firstStop)
		case <-hook.Done():
			close(firstStop)
			return nil
		}
		stop := make(chan struct{})
		go func() {
			<-hook.Done()
			close(stop)
		}()
		go portallocatorcontroller.NewRepair(interval, cross.CoreV1(), root.EventsV1(), ports, registry).RunUntil(func() {}, stop)
		return nil
	})
}
