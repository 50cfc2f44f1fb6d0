// Command pause is the local cluster's pod sandbox image: it waits for SIGTERM or SIGINT and
// exits 0. It replaces the upstream pause image, which cannot be pulled without a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
