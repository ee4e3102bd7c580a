// Command kplex-apiserver serves many isolated Kubernetes control planes
// from one process.
package main

import "github.com/kplex/kplex/cmd/kplex-apiserver/app"

func main() { app.Main() }
