// Command kplex-scheduler is kube-scheduler for every tenant of a kplex
// apiserver at once: one queue, one pass over the shared nodes, with
// pools fenced per tenant, tenant quotas and fair share.
package main

import "github.com/kplex/kplex/cmd/kplex-scheduler/app"

func main() { app.Main() }
