package simulated

import (
	"context"
	"net/netip"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func sandboxConfig(name string, network runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "t~default", Uid: name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: network}}},
	}
}

func podIP(t *testing.T, r *Runtime, id string) string {
	t.Helper()
	st, err := r.PodSandboxStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.GetStatus().GetNetwork().GetIp()
}

func TestSandboxesGetAddressesOfTheNodesPodCIDR(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := New()
	if id, _ := r.RunPodSandbox(ctx, sandboxConfig("before", runtimeapi.NamespaceMode_POD), ""); podIP(t, r, id) != "" {
		t.Error("an address before the node has a pod CIDR")
	}
	if err := r.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.7.0/30"}}); err != nil {
		t.Fatal(err)
	}
	cidr := netip.MustParsePrefix("10.244.7.0/30")
	a, _ := r.RunPodSandbox(ctx, sandboxConfig("a", runtimeapi.NamespaceMode_POD), "")
	host, _ := r.RunPodSandbox(ctx, sandboxConfig("host", runtimeapi.NamespaceMode_NODE), "")
	ipA := podIP(t, r, a)
	if addr, err := netip.ParseAddr(ipA); err != nil || !cidr.Contains(addr) || ipA == "10.244.7.1" {
		t.Errorf("sandbox a got %q, want a pod address of %s other than the gateway's", ipA, cidr)
	}
	if ip := podIP(t, r, host); ip != "" {
		t.Errorf("a host-network sandbox got %q", ip)
	}
	// A /30 has one pod address: the next sandbox gets none until a's goes.
	b, _ := r.RunPodSandbox(ctx, sandboxConfig("b", runtimeapi.NamespaceMode_POD), "")
	if ip := podIP(t, r, b); ip != "" {
		t.Errorf("sandbox b got %q from a full range", ip)
	}
	if err := r.RemovePodSandbox(ctx, a); err != nil {
		t.Fatal(err)
	}
	c, _ := r.RunPodSandbox(ctx, sandboxConfig("c", runtimeapi.NamespaceMode_POD), "")
	if ip := podIP(t, r, c); ip != ipA {
		t.Errorf("sandbox c got %q, want a's freed %s", ip, ipA)
	}
	if err := r.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "nonsense"}}); err == nil {
		t.Error("a bad pod CIDR was taken")
	}
}
