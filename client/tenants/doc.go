// Package tenants is the Go client for a kplex server's tenants: create,
// wait until serving, list, fetch credentials and delete. The kplex CLI, the
// end-to-end tests and the benchmarks all go through it.
package tenants
