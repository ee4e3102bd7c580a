// Package top turns a capacity.Report into the rows `kplex top pools`,
// `kplex top tenants` and `kplex dashboard` show: whole numbers (GPUs,
// CPU millicores, memory bytes) under stable JSON names, sorted, and the
// tables a person reads in a terminal. The commands are its subpackages
// pools and tenants; the dashboard serves the same rows as JSON.
//
// The JSON names are a contract for scripts and for the dashboard's page:
// fields are added, never renamed.
package top
