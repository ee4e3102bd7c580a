package top_test

import (
	"fmt"

	"github.com/kplex/kplex/cli/top"
)

func ExampleQuota() {
	nominal, limit := int64(8), int64(4)
	fmt.Println(top.Quota(top.TenantPool{GPUNominal: &nominal, GPUBorrowingLimit: &limit}))
	fmt.Println(top.Quota(top.TenantPool{GPUNominal: &nominal}))
	fmt.Println(top.Quota(top.TenantPool{}))
	// Output:
	// 8+4
	// 8+∞
	// -
}

func ExampleBytes() {
	fmt.Println(top.Bytes(32<<30), top.Bytes(1536<<20), top.Cores(1500), top.Percent(6, 8))
	// Output: 32Gi 1.5Gi 1.5 75%
}
