// Command pause is the kplex test sandbox image's entrypoint: it holds the
// pod's namespaces open until the runtime stops it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
