package top

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/kplex/kplex/capacity"
)

// Write prints rows (a []Pool or []Tenant) in format: "" is a table,
// json and yaml are for scripts.
func Write(w io.Writer, format string, rows any) error {
	switch format {
	case "":
		switch rows := rows.(type) {
		case []Pool:
			return WritePools(w, rows)
		case []Tenant:
			return WriteTenants(w, rows)
		}
		return fmt.Errorf("no table for %T", rows)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "yaml":
		b, err := yaml.Marshal(rows)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("--output %q is not supported: use json or yaml (default: a table)", format)
}

// ValidOutput checks an --output value before any work is done.
func ValidOutput(format string) error {
	switch format {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output %q is not supported: use json or yaml (default: a table)", format)
}

// WritePools prints pools as a table.
func WritePools(w io.Writer, pools []Pool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tNODES\tREADY\tSANDBOX\tGPU(REQ/ALLOC)\tGPU%\tUNHEALTHY-GPUS\tCPU(REQ/ALLOC)\tMEMORY(REQ/ALLOC)")
	for _, p := range pools {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d/%d\t%s\t%d\t%s/%s\t%s/%s\n",
			PoolName(p.Name), orDash(p.Mode), p.Nodes, p.ReadyNodes, sandboxColumn(p),
			p.GPURequested, p.GPUAllocatable, Percent(p.GPURequested, p.GPUAllocatable), p.GPUUnhealthy,
			Cores(p.CPURequestedMillis), Cores(p.CPUAllocatableMillis),
			Bytes(p.MemoryRequestedBytes), Bytes(p.MemoryAllocatableBytes))
	}
	return tw.Flush()
}

// WriteTenants prints one line per tenant and pool; a tenant's waiting
// pods, which are in no pool yet, are on its first line.
func WriteTenants(w io.Writer, tenants []Tenant) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPOOL\tPODS\tGPU-USED\tGPU-QUOTA\tBORROWED\tCPU-USED\tMEMORY-USED\tPENDING")
	for _, t := range tenants {
		pools := t.Pools
		if len(pools) == 0 {
			pools = []TenantPool{{Pool: "-"}}
		}
		for i, p := range pools {
			pending := ""
			if i == 0 {
				pending = PendingSummary(t.Pending)
			}
			name := PoolName(p.Pool)
			if len(t.Pools) == 0 {
				name = "-"
			}
			quota, borrowed := Quota(p), "-"
			if p.GPUNominal != nil {
				borrowed = strconv.FormatInt(p.GPUBorrowed, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
				orDash(t.Name), name, p.Pods, p.GPUUsed, quota, borrowed,
				Cores(p.CPUUsedMillis), Bytes(p.MemoryUsedBytes), pending)
		}
	}
	return tw.Flush()
}

// PoolName is how a pool is shown: "(no pool)" for the nodes in none.
func PoolName(name string) string {
	if name == capacity.NoPool {
		return "(no pool)"
	}
	return name
}

// Quota is a tenant's GPU quota in a pool as nominal+borrowing limit:
// "4+2", "4+∞" when borrowing is not bounded, "-" without a quota.
func Quota(p TenantPool) string {
	if p.GPUNominal == nil {
		return "-"
	}
	limit := "∞"
	if p.GPUBorrowingLimit != nil {
		limit = strconv.FormatInt(*p.GPUBorrowingLimit, 10)
	}
	return strconv.FormatInt(*p.GPUNominal, 10) + "+" + limit
}

// PendingSummary is "3 QuotaExhausted, 1 PoolNotAllowed", or "-".
func PendingSummary(pending []Pending) string {
	if len(pending) == 0 {
		return "-"
	}
	parts := make([]string, len(pending))
	for i, p := range pending {
		parts[i] = fmt.Sprintf("%d %s", p.Pods, p.Reason)
	}
	return strings.Join(parts, ", ")
}

// Percent is part of whole as "75%" (rounded down), or "-" when whole is 0.
func Percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return strconv.FormatInt(part*100/whole, 10) + "%"
}

// Cores formats millicores as cores: "8", "1.5", "0.25".
func Cores(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64)
}

// Bytes formats bytes with binary suffixes, to one decimal: "32Gi",
// "1.5Gi", "512Mi"; below 1Ki, the bare number as Kubernetes writes it.
func Bytes(b int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	if b < 1024 {
		return strconv.FormatInt(b, 10)
	}
	v, i := float64(b)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[i]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sandboxColumn shows a pool's required sandbox with how many of its nodes
// have it ("gvisor 0/3" tells the operator why its pods wait); "-" when
// the pool requires none.
func sandboxColumn(p Pool) string {
	if p.Sandbox == "" || p.Sandbox == "none" {
		return orDash(p.Sandbox)
	}
	return fmt.Sprintf("%s %d/%d", p.Sandbox, p.SandboxedNodes, p.Nodes)
}
