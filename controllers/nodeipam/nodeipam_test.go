package nodeipam

import (
	"strings"
	"testing"
)

func TestValidateNamesTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{ClusterCIDR: "10.0.0.0/8", NodeCIDRMaskSize: 16}, ""},
		{Options{ClusterCIDR: "10.244.0.0"}, "--cluster-cidr"},
		{Options{ServiceCIDR: "x"}, "--service-cluster-ip-range"},
		{Options{NodeCIDRMaskSize: 8}, "--node-cidr-mask-size 8"},
		{Options{NodeCIDRMaskSize: 31}, "--node-cidr-mask-size 31"},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	if d := (Options{}).WithDefaults(); d.ClusterCIDR != DefaultClusterCIDR || d.NodeCIDRMaskSize != 24 || d.ServiceCIDR != DefaultServiceCIDR {
		t.Errorf("defaults: %+v", d)
	}
}
