package gvisor

import (
	_ "embed"
	"fmt"
	"strings"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// Handler is the CRI runtime handler nodes configure for gVisor and
// announce (kplex-nodeagent --runtime-handlers).
const Handler = schedulingv1alpha1.GVisorRuntimeHandler

//go:embed kplex-runsc.sh
var script string

// Script returns kplex-runsc for the runsc at runscPath, passing flags to
// every runsc command after --network=host.
func Script(runscPath string, flags ...string) string {
	quoted := make([]string, len(flags))
	for i, f := range flags {
		quoted[i] = "'" + strings.ReplaceAll(f, "'", `'\''`) + "'"
	}
	out := strings.Replace(script, "RUNSC=/usr/bin/runsc\n", "RUNSC="+shellQuote(runscPath)+"\n", 1)
	return strings.Replace(out, "RUNSC_FLAGS=\n", "RUNSC_FLAGS="+shellQuote(strings.Join(quoted, " "))+"\n", 1)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ContainerdConfig is the CRI plugin's runtime entry (containerd 1.6's
// version 2 config) that runs Handler's pods through wrapper under runc's
// shim, keeping runsc's state under root.
func ContainerdConfig(wrapper, root string) string {
	return fmt.Sprintf(`
  # gVisor, through runc's shim and kplex-runsc (nodeagent/gvisor).
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%[1]s.options]
    BinaryName = %q
    Root = %q
`, Handler, wrapper, root)
}
