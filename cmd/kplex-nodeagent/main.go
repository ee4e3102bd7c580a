// Command kplex-nodeagent runs a node for every tenant of a kplex
// apiserver: it registers the Node in the management plane, heartbeats its
// Lease and runs the pods bound to it, of any tenant, through CRI.
package main

import "github.com/kplex/kplex/cmd/kplex-nodeagent/app"

func main() { app.Main() }
