package lifecycle

import (
	"context"
	"fmt"
	"path"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsscheme "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/scheme"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
)

// purge removes every etcd key of tenant name: for each resource prefix P the
// apiserver stores under (and each custom resource the tenant defined),
// everything under P/<name>/. The watch caches see the deletions as events
// and drop the objects, so the tenant's memory goes with its keys.
//
// Service cluster IPs are allocated from one range for all tenants and
// recorded as IPAddress objects in root; those of the tenant's Services are
// released first.
func (c *Controller) purge(ctx context.Context, name string) error {
	if err := c.releaseServiceIPs(ctx, name); err != nil {
		return err
	}
	prefixes := c.opts.Prefixes.List()
	crdPrefixes, err := c.customResourcePrefixes(ctx, name)
	if err != nil {
		return err
	}
	deleted := int64(0)
	for _, p := range append(prefixes, crdPrefixes...) {
		resp, err := c.opts.Etcd.Delete(ctx, p+"/"+name+"/", clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("deleting keys of tenant %q under %s: %w", name, p, err)
		}
		deleted += resp.Deleted
	}
	klog.InfoS("Tenant data removed", "tenant", name, "keys", deleted)
	return nil
}

// customResourcePrefixes returns the key prefixes of the custom resources
// defined in tenant name.
func (c *Controller) customResourcePrefixes(ctx context.Context, name string) ([]string, error) {
	crdPrefix := path.Join("/", c.opts.EtcdPrefix, "apiextensions.k8s.io", "customresourcedefinitions", name) + "/"
	resp, err := c.opts.Etcd.Get(ctx, crdPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing custom resource definitions of tenant %q: %w", name, err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		obj, _, err := apiextensionsscheme.Codecs.UniversalDeserializer().Decode(kv.Value, nil, nil)
		if err != nil {
			klog.V(2).InfoS("Skipping undecodable custom resource definition", "key", string(kv.Key), "err", err)
			continue
		}
		if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			out = append(out, path.Join("/", c.opts.EtcdPrefix, crd.Spec.Group, crd.Spec.Names.Plural))
		}
	}
	return out, nil
}

// releaseServiceIPs deletes the root IPAddress objects that hold the cluster
// IPs of tenant name's Services.
func (c *Controller) releaseServiceIPs(ctx context.Context, name string) error {
	servicePrefix := path.Join("/", c.opts.EtcdPrefix, "services", "specs", name) + "/"
	resp, err := c.opts.Etcd.Get(ctx, servicePrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("listing services of tenant %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	root, err := kubernetes.NewForConfig(c.opts.Loopback)
	if err != nil {
		return err
	}
	decoder := scheme.Codecs.UniversalDeserializer()
	for _, kv := range resp.Kvs {
		obj, _, err := decoder.Decode(kv.Value, nil, nil)
		if err != nil {
			klog.V(2).InfoS("Skipping undecodable service", "key", string(kv.Key), "err", err)
			continue
		}
		svc, ok := obj.(*corev1.Service)
		if !ok {
			continue
		}
		for _, ip := range svc.Spec.ClusterIPs {
			if err := releaseIP(ctx, root, ip, svc); err != nil {
				return err
			}
		}
	}
	return nil
}

func releaseIP(ctx context.Context, root kubernetes.Interface, ip string, svc *corev1.Service) error {
	if ip == "" || ip == corev1.ClusterIPNone {
		return nil
	}
	addr, err := root.NetworkingV1().IPAddresses().Get(ctx, ip, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading IPAddress %s: %w", ip, err)
	}
	ref := addr.Spec.ParentRef
	if ref == nil || ref.Resource != "services" || ref.Namespace != svc.Namespace || ref.Name != svc.Name {
		return nil
	}
	err = root.NetworkingV1().IPAddresses().Delete(ctx, ip, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &addr.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("releasing IPAddress %s: %w", ip, err)
	}
	return nil
}
