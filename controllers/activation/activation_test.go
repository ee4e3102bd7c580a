package activation

import (
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/client/crosstenant/tenantview"
)

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   Options
		want Options
	}{
		{"zero", Options{}, Options{QuietPeriod: DefaultQuietPeriod, QPS: DefaultQPS, Burst: DefaultBurst}},
		{"set", Options{QuietPeriod: time.Second, QPS: 1, Burst: 2}, Options{QuietPeriod: time.Second, QPS: 1, Burst: 2}},
		{"negative", Options{QuietPeriod: -1}, Options{QuietPeriod: DefaultQuietPeriod, QPS: DefaultQPS, Burst: DefaultBurst}},
	} {
		if got := tc.in.withDefaults(); got.QuietPeriod != tc.want.QuietPeriod || got.QPS != tc.want.QPS || got.Burst != tc.want.Burst {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	ok := Options{Loopback: &rest.Config{Host: "https://127.0.0.1:1"}, Caches: &tenantview.Caches{}, Tenants: func() []string { return nil }}
	if _, err := New(ok); err != nil {
		t.Fatalf("New with every required option: %v", err)
	}
	noLoopback := ok
	noLoopback.Loopback = nil
	if _, err := New(noLoopback); err == nil {
		t.Error("New without a loopback config succeeded")
	}
	if _, err := New(ok, Spec{Name: "x"}); err == nil {
		t.Error("New with a spec without Relevant and Build succeeded")
	}
}

func TestDiscoveryCallsAreNotWork(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/clusters/a/api":                                  true,
		"/clusters/a/api/v1":                               true,
		"/clusters/a/apis":                                 true,
		"/clusters/a/apis/apps":                            true,
		"/clusters/a/apis/apps/v1":                         true,
		"/apis/apps/v1":                                    true,
		"/clusters/a/api/v1/pods":                          false,
		"/clusters/a/apis/apps/v1/deployments":             false,
		"/clusters/a/api/v1/namespaces/x/configmaps":       false,
		"/clusters/apis/api/v1/namespaces":                 false,
		"/clusters/a/apis/example.com/v1/namespaces/x/foo": false,
	} {
		if got := isDiscovery(path); got != want {
			t.Errorf("isDiscovery(%q) = %v, want %v", path, got, want)
		}
	}
}
