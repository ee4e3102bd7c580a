package dns

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

const hostResolv = `# written by the host
nameserver 192.0.2.53
nameserver 192.0.2.54
search old.example
search corp.example. lab.example .
options timeout:2
options attempts:3 timeout:1
domain ignored.example
`

func TestResolvConf(t *testing.T) {
	t.Parallel()
	manySearches := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("d%d.example", i))
		}
		return "search " + strings.Join(s, " ") + "\n"
	}
	// Eleven distinct search paths of 200 characters: 2,210 with spaces.
	var longSearches []string
	for i := range 11 {
		longSearches = append(longSearches, fmt.Sprintf("%02d%s.example", i, strings.Repeat(".a", 95)))
	}
	tests := []struct {
		name        string
		policy      corev1.DNSPolicy
		dnsConfig   *corev1.PodDNSConfig
		hostNetwork bool
		nameserver  string
		host        string
		want        string
		wantErr     string
	}{
		{
			name: "ClusterFirst", policy: corev1.DNSClusterFirst, nameserver: "10.96.0.10", host: hostResolv,
			want: "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name: "empty policy is ClusterFirst", nameserver: "10.96.0.10",
			want: "search team.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name: "ClusterFirst on host network falls back to Default", policy: corev1.DNSClusterFirst, hostNetwork: true, nameserver: "10.96.0.10", host: hostResolv,
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:1 attempts:3\n",
		},
		{
			name: "ClusterFirstWithHostNet on host network", policy: corev1.DNSClusterFirstWithHostNet, hostNetwork: true, nameserver: "10.96.0.10",
			want: "search team.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name: "ClusterFirst without a cluster nameserver falls back to Default", policy: corev1.DNSClusterFirst, host: hostResolv,
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:1 attempts:3\n",
		},
		{
			name: "Default", policy: corev1.DNSDefault, nameserver: "10.96.0.10", host: hostResolv,
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:1 attempts:3\n",
		},
		{
			name: "Default without a host resolv.conf", policy: corev1.DNSDefault, want: "",
		},
		{
			name: "None is only dnsConfig", policy: corev1.DNSNone, nameserver: "10.96.0.10", host: hostResolv,
			dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"8.8.8.8"}, Searches: []string{"a.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}},
			want:      "search a.example\nnameserver 8.8.8.8\noptions ndots:2 edns0\n",
		},
		{
			name: "dnsConfig merges into ClusterFirst", policy: corev1.DNSClusterFirst, nameserver: "10.96.0.10",
			dnsConfig: &corev1.PodDNSConfig{
				Nameservers: []string{"10.96.0.10", "8.8.8.8"},
				Searches:    []string{"cluster.local", "extra.example"},
				Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "single-request"}},
			},
			want: "search team.svc.cluster.local svc.cluster.local cluster.local extra.example\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:2 single-request\n",
		},
		{
			name: "nameservers cut to 3", policy: corev1.DNSDefault, host: "nameserver 192.0.2.1\nnameserver 192.0.2.2\n",
			dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.3", "192.0.2.4"}},
			want:      "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\n",
		},
		{
			name: "search paths cut to 32", policy: corev1.DNSClusterFirst, nameserver: "10.96.0.10", host: manySearches(31),
			want: "search team.svc.cluster.local svc.cluster.local cluster.local " + strings.TrimPrefix(strings.TrimSuffix(manySearches(29), "\n"), "search ") + "\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name: "search line cut to 2048 characters", policy: corev1.DNSDefault,
			host: "search " + strings.Join(longSearches, " ") + "\n",
			want: "search " + strings.Join(longSearches[:10], " ") + "\n",
		},
		{
			name: "search paths longer than 253 characters dropped", policy: corev1.DNSDefault,
			host: "search a.example " + strings.Repeat("b.", 127) + "example b.example\n",
			want: "search a.example b.example\n",
		},
		{name: "None without dnsConfig", policy: corev1.DNSNone, wantErr: "spec.dnsConfig.nameservers: Required value"},
		{name: "unknown policy", policy: "Sometimes", wantErr: "spec.dnsPolicy: Unsupported value"},
		{name: "nameserver not an IP", dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"dns.example"}}, wantErr: "spec.dnsConfig.nameservers[0]"},
		{name: "too many nameservers", dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}}, wantErr: "spec.dnsConfig.nameservers: Too many"},
		{name: "bad search", dnsConfig: &corev1.PodDNSConfig{Searches: []string{"ok.example", "Not OK"}}, wantErr: "spec.dnsConfig.searches[1]"},
		{name: "empty option name", dnsConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Value: ptr.To("1")}}}, wantErr: "spec.dnsConfig.options[0].name: Required value"},
		{name: "option value injecting a line", dnsConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1\nnameserver 6.6.6.6")}}}, wantErr: "spec.dnsConfig.options[0].value"},
		{name: "bad cluster nameserver", nameserver: "kube-dns", wantErr: "cluster DNS nameserver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var host []byte
			if tt.host != "" {
				host = []byte(tt.host)
			}
			got, err := ResolvConf(tt.policy, tt.dnsConfig, tt.hostNetwork, "team", "cluster.local", tt.nameserver, host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
