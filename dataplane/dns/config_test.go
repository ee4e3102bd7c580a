package dns

import (
	"slices"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	records := newFakeRecords()
	tests := []struct {
		name       string
		in         Config
		domain     string
		upstreams  []string
		ttl        uint32
		errContain string
	}{
		{"defaults", Config{Addresses: []string{"10.96.0.10:53"}, Records: records}, "cluster.local", []string{}, 5, ""},
		{"domain normalised", Config{Addresses: []string{":53"}, Records: records, ClusterDomain: "Kplex.Example.", TTL: 30}, "kplex.example", []string{}, 30, ""},
		{"bare upstream IPs get port 53", Config{Addresses: []string{":53"}, Records: records, Upstreams: []string{"192.0.2.53", "2001:db8::53", "192.0.2.1:5353"}},
			"cluster.local", []string{"192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.1:5353"}, 5, ""},
		{"Records required", Config{Addresses: []string{":53"}}, "", nil, 0, "Records is required"},
		{"an address required", Config{Records: records}, "", nil, 0, "Addresses: at least one"},
		{"address without port", Config{Addresses: []string{"10.96.0.10"}, Records: records}, "", nil, 0, "Addresses[0]"},
		{"upstream port 0", Config{Addresses: []string{":53"}, Records: records, Upstreams: []string{"192.0.2.1:0"}}, "", nil, 0, "Upstreams[0]"},
		{"upstream name without port", Config{Addresses: []string{":53"}, Records: records, Upstreams: []string{"dns.example"}}, "", nil, 0, "Upstreams[0]"},
		{"bad domain", Config{Addresses: []string{":53"}, Records: records, ClusterDomain: "a..b"}, "", nil, 0, "ClusterDomain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.in)
			if tt.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContain) {
					t.Fatalf("error %v, want one containing %q", err, tt.errContain)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.ClusterDomain != tt.domain || s.zone != tt.domain+"." || s.cfg.TTL != tt.ttl || !slices.Equal(s.cfg.Upstreams, tt.upstreams) {
				t.Errorf("got domain %q zone %q TTL %d upstreams %q, want %q, %d, %q", s.cfg.ClusterDomain, s.zone, s.cfg.TTL, s.cfg.Upstreams, tt.domain, tt.ttl, tt.upstreams)
			}
		})
	}
}

func TestConfigDefaultsLeaveCallerAlone(t *testing.T) {
	t.Parallel()
	ups := []string{"192.0.2.53"}
	cfg := Config{Addresses: []string{":53"}, Records: newFakeRecords(), Upstreams: ups}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if ups[0] != "192.0.2.53" {
		t.Errorf("New changed the caller's Upstreams: %q", ups)
	}
}
