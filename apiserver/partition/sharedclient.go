package partition

import (
	clientv3 "go.etcd.io/etcd/client/v3"
	etcdkubernetes "go.etcd.io/etcd/client/v3/kubernetes"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	"k8s.io/client-go/tools/cache"
)

// SharedClientStorage returns a storage decorator that builds uncached etcd
// storage over client. Upstream dials an etcd client per storage: right for
// a few hundred built-in resources, too dear for one per custom resource
// version per tenant. Destroying the storage leaves client open.
func SharedClientStorage(client *clientv3.Client) generic.StorageDecorator {
	kc := &etcdkubernetes.Client{Client: client}
	kc.Kubernetes = kc
	return func(
		config *storagebackend.ConfigForResource,
		resourcePrefix string,
		_ func(obj runtime.Object) (string, error),
		newFunc func() runtime.Object,
		newListFunc func() runtime.Object,
		_ storage.AttrFunc,
		_ storage.IndexerFuncs,
		_ *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {

		var compactor etcd3.Compactor
		if config.CompactionInterval != 0 {
			// The server's own compactor for these endpoints.
			compactor = etcd3.StartCompactorPerEndpoint(client, config.CompactionInterval)
		}
		transformer := config.Transformer
		if transformer == nil {
			transformer = identity.NewEncryptCheckTransformer()
		}
		versioner := storage.APIObjectVersioner{}
		s, err := etcd3.New(kc, compactor, config.Codec, newFunc, newListFunc, config.Prefix, resourcePrefix,
			config.GroupResource, transformer, config.LeaseManagerConfig, etcd3.NewDefaultDecoder(config.Codec, versioner), versioner)
		if err != nil {
			return nil, func() {}, err
		}
		return s, s.Close, nil
	}
}
