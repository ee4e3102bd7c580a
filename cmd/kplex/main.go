// Command kplex is the kplex command line: bring kplex up and down, and
// create, list, delete and get credentials of clusters (tenants).
package main

import "github.com/kplex/kplex/cmd/kplex/app"

func main() { app.Main() }
