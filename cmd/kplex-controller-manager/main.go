// Command kplex-controller-manager runs upstream Kubernetes controllers for
// every tenant of a kplex apiserver, each only while its tenant has work.
package main

import "github.com/kplex/kplex/cmd/kplex-controller-manager/app"

func main() { app.Main() }
