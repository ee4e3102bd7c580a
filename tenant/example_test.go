package tenant_test

import (
	"context"
	"fmt"

	"github.com/kplex/kplex/tenant"
)

func ExampleValidateName() {
	for _, name := range []string{"acme", "Acme", "a..b", "root"} {
		fmt.Println(name, tenant.ValidateName(name) == nil)
	}
	// Output:
	// acme true
	// Acme false
	// a..b false
	// root false
}

func ExamplePath() {
	fmt.Println(tenant.Path("acme") + "/api/v1/namespaces")
	// Output: /clusters/acme/api/v1/namespaces
}

func ExampleFromContext() {
	ctx := context.Background()
	fmt.Println(tenant.FromContext(ctx))
	fmt.Println(tenant.FromContext(tenant.WithTenant(ctx, "acme")))
	// Output:
	// root
	// acme
}
