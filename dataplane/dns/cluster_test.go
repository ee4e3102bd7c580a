package dns

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestClusterNames(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, newFakeRecords())
	const (
		podA = "10.1.0.5" // a pod of tenant a
		podB = "10.2.0.5" // a pod of tenant b
	)
	tests := []struct {
		name   string
		src    string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
	}{
		// The same name is each tenant's own.
		{"service from tenant a", podA, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.20"}, nil},
		{"service from tenant b", podB, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.30"}, nil},
		{"IPv4-mapped source is tenant b", "::ffff:" + podB, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.30"}, nil},
		{"dual-stack service AAAA", podA, "web.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00:96::20"}, nil},
		{"ANY gives both families", podA, "web.default.svc.cluster.local.", dns.TypeANY, dns.RcodeSuccess, []string{"A 10.96.0.20", "AAAA fd00:96::20"}, nil},
		{"single-stack service AAAA is NODATA", podB, "web.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"names are case-insensitive", podA, "WEB.Default.SVC.Cluster.Local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.20"}, nil},
		{"TXT on a service is NODATA", podA, "web.default.svc.cluster.local.", dns.TypeTXT, dns.RcodeSuccess, nil, nil},
		{"unknown service", podA, "nope.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"another tenant's service", podB, "db.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"service in another namespace", podA, "web.prod.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// Headless Services and their endpoints.
		{"headless: ready endpoints only", podA, "db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.7", "A 10.1.0.9"}, nil},
		{"endpoint by hostname", podA, "db-0.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.7"}, nil},
		{"not-ready endpoint has no name", podA, "db-1.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"endpoint without hostname by dashed IP", podA, "10-1-0-9.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.9"}, nil},
		{"endpoint AAAA is NODATA", podA, "db-0.db.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"publishNotReadyAddresses", podA, "warm.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.10"}, nil},
		{"headless without ready endpoints", podA, "empty.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// ExternalName.
		{"ExternalName A is a CNAME", podA, "ext.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME db.example.com."}, nil},
		{"ExternalName CNAME", podA, "ext.default.svc.cluster.local.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME db.example.com."}, nil},
		{"nothing below an ExternalName", podA, "x.ext.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// SRV.
		{"SRV of a ClusterIP service", podA, "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 100 80 web.default.svc.cluster.local."}, []string{"A 10.96.0.20", "AAAA fd00:96::20"}},
		{"SRV of a UDP port", podB, "_dns._udp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 100 53 web.default.svc.cluster.local."}, []string{"A 10.96.0.30"}},
		{"SRV with the wrong protocol", podA, "_http._udp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, nil, nil},
		{"SRV of an unknown port", podA, "_grpc._tcp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, nil, nil},
		{"A at an SRV name is NODATA", podA, "_http._tcp.web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"SRV at the service name lists every port", podB, "web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 50 53 web.default.svc.cluster.local.", "SRV 0 50 80 web.default.svc.cluster.local."}, []string{"A 10.96.0.30"}},
		{"SRV of a headless service names endpoints", podA, "_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 50 5432 10-1-0-9.db.default.svc.cluster.local.", "SRV 0 50 5432 db-0.db.default.svc.cluster.local."},
			[]string{"A 10.1.0.7", "A 10.1.0.9"}},

		// Pods, verified.
		{"own pod", podA, "10-1-0-5.default.pod.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.5"}, nil},
		{"own IPv6 pod", podA, "fd00--5.default.pod.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::5"}, nil},
		{"own pod AAAA is NODATA", podA, "10-1-0-5.default.pod.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"another tenant's pod", podB, "10-1-0-5.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"pod in another namespace", podA, "10-1-0-5.prod.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"address that is no pod", podA, "10-9-9-9.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"pod label that is no IP", podA, "not-an-ip.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// The zone's structure.
		{"apex SOA", podA, "cluster.local.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"}, nil},
		{"apex NS", podA, "cluster.local.", dns.TypeNS, dns.RcodeSuccess, []string{"NS ns.dns.cluster.local."}, nil},
		{"apex A is NODATA", podA, "cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"namespace is NODATA", podA, "default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"svc is NODATA", podA, "svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"dns-version", podA, "dns-version.cluster.local.", dns.TypeTXT, dns.RcodeSuccess, []string{`TXT "1.1.0"`}, nil},
		{"other name in the zone", podA, "foo.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"too many labels", podA, "a.b.c.web.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil},

		// Sources that are no pod get nothing of any tenant.
		{"unknown source is refused", "10.9.9.9", "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeRefused, nil, nil},
		{"unknown source is refused the apex", "10.9.9.9", "cluster.local.", dns.TypeSOA, dns.RcodeRefused, nil, nil},

		// Reverse lookups name only the asking tenant's addresses.
		{"PTR of own ClusterIP", podA, "20.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR web.default.svc.cluster.local."}, nil},
		{"PTR of own pod", podA, "5.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR 10-1-0-5.default.pod.cluster.local."}, nil},
		{"PTR of own IPv6 pod", podA, mustReverse("fd00::5"), dns.TypePTR, dns.RcodeSuccess, []string{"PTR fd00--5.default.pod.cluster.local."}, nil},
		{"PTR of another tenant's ClusterIP is forwarded", podB, "20.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeServerFailure, nil, nil},
		{"PTR of another tenant's pod is forwarded", podB, "5.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeServerFailure, nil, nil},

		// Other names go upstream; there is none here.
		{"outside name without upstreams", podA, "example.com.", dns.TypeA, dns.RcodeServerFailure, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := new(dns.Msg).SetQuestion(tt.qname, tt.qtype)
			resp := ask(t, s, tt.src, false, req)
			if resp.Id != req.Id || !resp.Response || len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
				t.Errorf("reply does not echo the query: %v", resp)
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := withoutSerial(rdata(resp.Answer), s.serial); !slices.Equal(got, tt.answer) {
				t.Errorf("answer %q, want %q", got, tt.answer)
			}
			if got := rdata(resp.Extra); !slices.Equal(got, tt.extra) {
				t.Errorf("extra %q, want %q", got, tt.extra)
			}
			for _, rr := range resp.Answer {
				if rr.Header().Name != tt.qname || rr.Header().Ttl != DefaultTTL {
					t.Errorf("answer %v: want owner %s and TTL %d", rr, tt.qname, DefaultTTL)
				}
			}
			authoritative := tt.rcode == dns.RcodeSuccess || tt.rcode == dns.RcodeNameError
			if resp.Authoritative != authoritative {
				t.Errorf("authoritative %v, want %v", resp.Authoritative, authoritative)
			}
			wantSOA := authoritative && len(tt.answer) == 0
			if gotSOA := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA; gotSOA != wantSOA {
				t.Errorf("authority %v, want SOA: %v", resp.Ns, wantSOA)
			}
		})
	}
}

func mustReverse(ip string) string {
	name, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return name
}

// withoutSerial puts SERIAL for the SOA serial, which is a time.
func withoutSerial(rrs []string, serial uint32) []string {
	for i, rr := range rrs {
		if f := strings.Fields(rr); f[0] == "SOA" && f[3] == strconv.FormatUint(uint64(serial), 10) {
			f[3] = "SERIAL"
			rrs[i] = strings.Join(f, " ")
		}
	}
	return rrs
}
