package tenant

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{"team-1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Upper", false},
		{"..", false},
		{"a.b", false},
		{"a%2Fb", false},
		{"a/b", false},
		{"*", false},
		{"-a", false},
		{"a-", false},
		{"root", false},
	}
	for _, tc := range tests {
		err := ValidateName(tc.name)
		if (err == nil) != tc.valid {
			t.Errorf("ValidateName(%q) = %v, want valid=%v", tc.name, err, tc.valid)
		}
	}
}
