package partition

import "testing"

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, tenant, key, want string
		wantErr                   bool
	}{
		{"/pods", "a", "/pods/ns/p", "/pods/a/ns/p", false},
		{"/pods/", "a", "/pods/ns/p", "/pods/a/ns/p", false},
		{"/pods", "a", "/pods", "/pods/a", false},
		{"/apiextensions.k8s.io/customresourcedefinitions", "b", "/apiextensions.k8s.io/customresourcedefinitions/w.example.com", "/apiextensions.k8s.io/customresourcedefinitions/b/w.example.com", false},
		{"/pods", "a", "/podsecuritypolicies/x", "", true},
		{"/pods", "a", "/secrets/ns/s", "", true},
	}
	for _, tc := range tests {
		got, err := Key(tc.prefix, tc.tenant, tc.key)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Key(%q, %q, %q) = %q, %v; want %q, err=%v", tc.prefix, tc.tenant, tc.key, got, err, tc.want, tc.wantErr)
		}
	}
}
