package server

import (
	"slices"
	"strings"
	"testing"
)

// Parsing no flags must leave every kplex default of NewConfig in place.
func TestFlagsKeepNewConfigDefaults(t *testing.T) {
	t.Setenv("KPLEX_DATA_DIR", "/var/lib/kplex-test")
	want := NewConfig()
	got := NewConfig()
	if err := got.FlagSet().Parse(nil); err != nil {
		t.Fatal(err)
	}
	if got.DataDir != want.DataDir || got.DataDir != "/var/lib/kplex-test" {
		t.Errorf("data dir %q, want %q", got.DataDir, want.DataDir)
	}
	k, w := got.Kube, want.Kube
	if k.SecureServing.BindPort != DefaultSecurePort || k.ServiceClusterIPRanges != DefaultServiceClusterIPRange {
		t.Errorf("port %d range %q", k.SecureServing.BindPort, k.ServiceClusterIPRanges)
	}
	if !slices.Equal(k.Authorization.Modes, w.Authorization.Modes) || !slices.Contains(k.Authorization.Modes, "RBAC") {
		t.Errorf("authorization modes %v", k.Authorization.Modes)
	}
	if !slices.Equal(k.Admission.GenericAdmission.DisablePlugins, w.Admission.GenericAdmission.DisablePlugins) {
		t.Errorf("disabled admission plugins %v", k.Admission.GenericAdmission.DisablePlugins)
	}
	if got.ClusterCIDR != "10.244.0.0/16" || got.ClusterCIDR != want.ClusterCIDR {
		t.Errorf("cluster CIDR %q", got.ClusterCIDR)
	}
	if !got.EmbeddedEtcd() {
		t.Error("no --etcd-servers must mean embedded etcd")
	}
}

func TestFlagsOverrideDefaults(t *testing.T) {
	cfg := NewConfig()
	err := cfg.FlagSet().Parse([]string{"--data-dir=/srv/kplex", "--secure-port=7443", "--etcd-servers=https://10.0.0.5:2379"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/kplex" || cfg.Kube.SecureServing.BindPort != 7443 || cfg.EmbeddedEtcd() {
		t.Errorf("flags not applied: %s %d embedded=%v", cfg.DataDir, cfg.Kube.SecureServing.BindPort, cfg.EmbeddedEtcd())
	}
	if err := cfg.FlagSet().Parse([]string{"--cluster-cidr=10.244.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--cluster-cidr") {
		t.Errorf("Validate with a bad cluster CIDR = %v", err)
	}
	cfg.DataDir = ""
	if err := cfg.Validate(); err != ErrNoDataDir {
		t.Errorf("Validate with no data dir = %v", err)
	}
}

func TestServingHostsNameTheKubernetesService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ranges, advertise string
		want              []string
	}{
		{DefaultServiceClusterIPRange, "192.0.2.9", []string{"10.96.0.1", "192.0.2.9"}},
		{"10.100.0.0/16,fd00::/108", "192.0.2.9", []string{"10.100.0.1", "192.0.2.9"}},
		{"fd00::/108", "2001:db8::9", []string{"fd00::1", "2001:db8::9"}},
	}
	for _, tc := range tests {
		cfg := NewConfig()
		if err := cfg.FlagSet().Parse([]string{"--service-cluster-ip-range=" + tc.ranges, "--advertise-address=" + tc.advertise}); err != nil {
			t.Fatal(err)
		}
		got, err := servingHosts(cfg)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s, %s: %v %v, want %v", tc.ranges, tc.advertise, got, err, tc.want)
		}
	}
	cfg := NewConfig()
	cfg.Kube.ServiceClusterIPRanges = "10.96.0.0"
	if _, err := servingHosts(cfg); err == nil || !strings.Contains(err.Error(), "--service-cluster-ip-range") {
		t.Errorf("a bad range: %v", err)
	}
}
