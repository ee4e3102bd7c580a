// Command kplex-deviceplugin advertises a node's NVIDIA GPUs to its
// kplex-nodeagent through the kubelet device-plugin API, and publishes
// the node's GPU feature labels.
package main

import "github.com/kplex/kplex/cmd/kplex-deviceplugin/app"

func main() { app.Main() }
