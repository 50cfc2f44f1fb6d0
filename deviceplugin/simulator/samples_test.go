package simulator_test

import (
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

// The example scenarios shipped in config/samples must stay valid.
func TestSampleScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "simulator", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample scenarios found (%v)", err)
	}
	for _, f := range files {
		sc, _, err := simulator.LoadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(sc.GPUs) == 0 {
			t.Errorf("%s: a sample should simulate at least one GPU", f)
		}
	}
}
