package isolation

import (
	"strings"
	"testing"
)

func TestPolicyIDCollision(t *testing.T) {
	t.Parallel()
	taken := map[string]bool{}
	first := policyID("default", "web", taken)
	if again := policyID("default", "web", map[string]bool{}); again != first {
		t.Errorf("policyID is not stable: %s then %s", first, again)
	}
	// The same hash again, as a collision would produce it.
	second := policyID("default", "web", taken)
	if second == first || !strings.HasPrefix(second, first+"-") {
		t.Errorf("colliding id = %q, want %q with a suffix", second, first)
	}
}

func TestValidTenant(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"acme": true, "a-1": true, "0day": true, "root": true,
		"": false, "Acme": false, "a_b": false, "-a": false, "a.b": false, strings.Repeat("a", 64): false,
	} {
		if got := validTenant(name); got != want {
			t.Errorf("validTenant(%q) = %v, want %v", name, got, want)
		}
	}
}
