package isolation

import (
	"cmp"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// index answers who owns which pod IP, and which pods and namespace labels
// each tenant has, for one Snapshot.
type index struct {
	// owner maps every pod IP to its tenant. An IP whose pod has no valid
	// tenant, or that pods of two tenants claim at once (a stale status while
	// the address is reused), maps to "": fenced, it belongs to nobody.
	owner   map[netip.Addr]string
	tenants map[string][]*podInfo
	nsLabel map[nsKey]labels.Set
}

type nsKey struct{ tenant, name string }

// podInfo is a pod with only the IPs its tenant owns.
type podInfo struct {
	*Pod
	ips []netip.Addr
}

func (p *podInfo) ipsOf(f family) []netip.Addr {
	var out []netip.Addr
	for _, a := range p.ips {
		if familyOf(a) == f {
			out = append(out, a)
		}
	}
	return out
}

func buildIndex(logger klog.Logger, snap Snapshot) *index {
	ix := &index{owner: map[netip.Addr]string{}, tenants: map[string][]*podInfo{}, nsLabel: map[nsKey]labels.Set{}}
	for i := range snap.Pods {
		p := &snap.Pods[i]
		t := p.Tenant
		if !validTenant(t) {
			logger.V(2).Info("Fencing off the IPs of a pod without a valid tenant", "tenant", t, "pod", klog.KRef(p.Namespace, p.Name))
			t = ""
		}
		for _, a := range p.IPs {
			a = a.Unmap()
			if !a.IsValid() {
				continue
			}
			if prev, ok := ix.owner[a]; ok && prev != t {
				logger.V(2).Info("Fencing off a pod IP two tenants claim", "ip", a, "tenants", []string{prev, t})
				ix.owner[a] = ""
				continue
			}
			ix.owner[a] = t
		}
	}
	for i := range snap.Pods {
		p := &snap.Pods[i]
		if !validTenant(p.Tenant) {
			continue
		}
		info := &podInfo{Pod: p}
		for _, a := range p.IPs {
			a = a.Unmap()
			if a.IsValid() && ix.owner[a] == p.Tenant && !slices.Contains(info.ips, a) {
				info.ips = append(info.ips, a)
			}
		}
		if len(info.ips) > 0 {
			ix.tenants[p.Tenant] = append(ix.tenants[p.Tenant], info)
		}
	}
	for _, pods := range ix.tenants {
		slices.SortFunc(pods, func(a, b *podInfo) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
	}
	for _, ns := range snap.Namespaces {
		ix.nsLabel[nsKey{ns.Tenant, ns.Name}] = namespaceLabels(ns.Name, ns.Labels)
	}
	return ix
}

// namespaceLabels returns the labels a namespaceSelector sees. The apiserver
// stamps kubernetes.io/metadata.name on every namespace; adding it here too
// keeps selectors by name working for namespaces the snapshot lacks.
func namespaceLabels(name string, l map[string]string) labels.Set {
	out := labels.Set{}
	for k, v := range l {
		out[k] = v
	}
	out["kubernetes.io/metadata.name"] = name
	return out
}

func (ix *index) namespaceLabels(tenant, ns string) labels.Set {
	if l, ok := ix.nsLabel[nsKey{tenant, ns}]; ok {
		return l
	}
	return namespaceLabels(ns, nil)
}
