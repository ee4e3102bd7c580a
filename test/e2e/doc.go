// Package e2e drives the real kplex binaries with the real kubectl, as a
// user would: `kplex up`, `kplex create cluster`, kubectl against the
// written contexts, `kplex down`.
//
// The binaries come from $KPLEX_BIN_DIR (the Makefile sets it); without it,
// TestMain builds them with `make build` into a temporary directory.
package e2e
