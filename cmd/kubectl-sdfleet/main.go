// Command kubectl-sdfleet is the `kubectl sdfleet` plugin: put it on PATH and kubectl finds it.
// See package kubectlplugin.
package main

import (
	"os"

	"github.com/sdfleet/sdfleet/kubectlplugin"
)

func main() { os.Exit(kubectlplugin.Main()) }
