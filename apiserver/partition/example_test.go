package partition_test

import (
	"fmt"

	"github.com/kplex/kplex/apiserver/partition"
)

func ExampleKey() {
	for _, key := range []string{"/configmaps/default/settings", "/configmaps/default", "/configmaps"} {
		k, _ := partition.Key("/configmaps", "acme", key)
		fmt.Println(k)
	}
	// Output:
	// /configmaps/acme/default/settings
	// /configmaps/acme/default
	// /configmaps/acme
}
