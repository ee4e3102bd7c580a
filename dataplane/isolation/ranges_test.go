package isolation

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestIPBlockRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cidr   string
		except []string
		want   []string // as prefixes
	}{
		{"10.0.0.0/8", nil, []string{"10.0.0.0/8"}},
		{"10.0.0.5/8", nil, []string{"10.0.0.0/8"}}, // host bits ignored
		{"10.0.0.0/30", []string{"10.0.0.1/32"}, []string{"10.0.0.0", "10.0.0.2/31"}},
		{"10.0.0.0/24", []string{"10.0.0.0/25", "10.0.0.128/25"}, nil},
		{"10.0.0.0/24", []string{"10.0.0.64/26", "10.0.0.96/27"}, []string{"10.0.0.0/26", "10.0.0.128/25"}},
		{"0.0.0.0/0", []string{"10.0.0.0/8"}, []string{"0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"}},
		{"::/0", []string{"::/1"}, []string{"8000::/1"}},
		{"2001:db8::/126", []string{"2001:db8::3/128"}, []string{"2001:db8::/127", "2001:db8::2"}},
		{"::ffff:10.0.0.0/104", nil, []string{"10.0.0.0/8"}},
	} {
		t.Run(fmt.Sprint(tc.cidr, tc.except), func(t *testing.T) {
			t.Parallel()
			rs, err := ipBlockRanges(&networkingv1.IPBlock{CIDR: tc.cidr, Except: tc.except})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				for _, p := range r.prefixes() {
					got = append(got, prefixString(p))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := ipBlockRanges(&networkingv1.IPBlock{CIDR: "10.0.0.0"}); err == nil {
		t.Error("a cidr without a length parsed")
	}
	if _, err := ipBlockRanges(&networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"x"}}); err == nil {
		t.Error("a bad except parsed")
	}
}

func TestMergeRanges(t *testing.T) {
	t.Parallel()
	r := func(lo, hi string) ipRange { return ipRange{netip.MustParseAddr(lo), netip.MustParseAddr(hi)} }
	got := mergeRanges([]ipRange{
		r("10.0.0.5", "10.0.0.9"), r("10.0.0.1", "10.0.0.1"), r("10.0.0.2", "10.0.0.4"),
		r("10.0.0.20", "10.0.0.30"), r("10.0.0.25", "10.0.0.26"),
		r("255.255.255.255", "255.255.255.255"), r("fd00::1", "fd00::1"), r("::", "::"),
	})
	want := []ipRange{
		r("10.0.0.1", "10.0.0.9"), r("10.0.0.20", "10.0.0.30"), r("255.255.255.255", "255.255.255.255"),
		r("::", "::"), r("fd00::1", "fd00::1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestMergePorts(t *testing.T) {
	t.Parallel()
	got := mergePorts([]portRange{
		{"tcp", 80, 80}, {"udp", 80, 80}, {"tcp", 81, 90}, {"tcp", 85, 86}, {"tcp", 100, 200}, {"sctp", 0, 65535},
	})
	want := []portRange{{"sctp", 0, 65535}, {"tcp", 80, 90}, {"tcp", 100, 200}, {"udp", 80, 80}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
