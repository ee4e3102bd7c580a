// Package serviceaccount runs upstream's ServiceAccounts controller (the
// `default` ServiceAccount of every namespace) and root-CA publisher (the
// kube-root-ca.crt ConfigMap of every namespace) per tenant, as
// activation Specs.
package serviceaccount

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
	sacontroller "k8s.io/kubernetes/pkg/controller/serviceaccount"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Controller names.
const (
	ServiceAccountsName = "serviceaccount"
	RootCAPublisherName = "root-ca-cert-publisher"
)

// DefaultName is the ServiceAccount every namespace gets.
const DefaultName = "default"

// ConfigMapSelector selects the only ConfigMaps the publisher reads: the
// shared cache need not hold any other.
var ConfigMapSelector = fields.OneTermEqualSelector("metadata.name", rootcacertpublisher.RootCACertConfigMapName)

// Caches are the cross-tenant caches the two controllers read.
type Caches struct {
	Namespaces *crosstenant.Cache
	// ServiceAccounts holds every ServiceAccount (the token controller
	// reads them all; most are `default` ones anyway).
	ServiceAccounts *crosstenant.Cache
	// ConfigMaps may hold only kube-root-ca.crt ones (ConfigMapSelector).
	ConfigMaps *crosstenant.Cache
}

// namespaceAdded is relevant to both: a new namespace needs both objects;
// so does one that becomes active again (upstream reacts to updates too,
// but a namespace's other updates give neither work).
func namespaceAdded(oldObj, newObj any) bool {
	ns, ok := newObj.(*corev1.Namespace)
	if !ok {
		return false
	}
	if oldObj == nil {
		return true
	}
	old, ok := crosstenant.Unwrap(oldObj).(*corev1.Namespace)
	return ok && old.Status.Phase != ns.Status.Phase && ns.Status.Phase == corev1.NamespaceActive
}

func active(ns *corev1.Namespace) bool {
	return ns.Status.Phase == corev1.NamespaceActive && ns.DeletionTimestamp == nil
}

// ServiceAccounts is upstream's ServiceAccountsController per tenant.
func ServiceAccounts(c Caches) activation.Spec {
	return activation.Spec{
		Name:  ServiceAccountsName,
		Watch: []*crosstenant.Cache{c.Namespaces, c.ServiceAccounts},
		Relevant: func(_ string, oldObj, newObj any) bool {
			if sa, ok := crosstenant.Unwrap(oldObj).(*corev1.ServiceAccount); ok && newObj == nil {
				return sa.Name == DefaultName
			}
			return namespaceAdded(oldObj, newObj)
		},
		Pending: func(t string) bool {
			for _, obj := range c.Namespaces.InTenant(t) {
				ns := obj.(*corev1.Namespace)
				if active(ns) && c.ServiceAccounts.Get(t, ns.Name, DefaultName) == nil {
					return true
				}
			}
			return false
		},
		Build: func(_ context.Context, env activation.Env) (func(context.Context), error) {
			core := env.Informers.Core().V1()
			opts := sacontroller.DefaultServiceAccountsControllerOptions()
			ctrl, err := sacontroller.NewServiceAccountsController(klog.Background(), core.ServiceAccounts(), core.Namespaces(), env.Client, opts)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { ctrl.Run(ctx, 1) }, nil
		},
	}
}

// RootCAPublisher is upstream's root-CA publisher per tenant; rootCA is
// the CA the apiserver serves with (PEM).
func RootCAPublisher(c Caches, rootCA []byte) activation.Spec {
	correct := func(obj any) bool {
		cm, ok := obj.(*corev1.ConfigMap)
		return ok && cm.Data["ca.crt"] == string(rootCA) && cm.Annotations[rootcacertpublisher.DescriptionAnnotation] != ""
	}
	return activation.Spec{
		Name:  RootCAPublisherName,
		Watch: []*crosstenant.Cache{c.Namespaces, c.ConfigMaps},
		Relevant: func(_ string, oldObj, newObj any) bool {
			if cm, ok := crosstenant.Unwrap(oldObj).(*corev1.ConfigMap); ok && newObj == nil {
				return cm.Name == rootcacertpublisher.RootCACertConfigMapName
			}
			if cm, ok := newObj.(*corev1.ConfigMap); ok {
				return cm.Name == rootcacertpublisher.RootCACertConfigMapName && !correct(cm)
			}
			return namespaceAdded(oldObj, newObj)
		},
		Pending: func(t string) bool {
			for _, obj := range c.Namespaces.InTenant(t) {
				ns := obj.(*corev1.Namespace)
				if active(ns) && !correct(c.ConfigMaps.Get(t, ns.Name, rootcacertpublisher.RootCACertConfigMapName)) {
					return true
				}
			}
			return false
		},
		Build: func(_ context.Context, env activation.Env) (func(context.Context), error) {
			core := env.Informers.Core().V1()
			p, err := rootcacertpublisher.NewPublisher(core.ConfigMaps(), core.Namespaces(), env.Client, rootCA)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { p.Run(ctx, 1) }, nil
		},
	}
}
