// Package cli is the kplex command line: one package per command below it,
// each with a private flagpole, NewCommand and a runE that calls a library
// function. Data goes to Out and chatter (progress, hints) to ErrOut, so
// `kplex get clusters -o json | jq` works and -q silences only the chatter.
package cli
