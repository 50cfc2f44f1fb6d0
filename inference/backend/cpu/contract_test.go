package cpu

import (
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/backendtest"
)

func TestContract(t *testing.T) {
	forEachKernel(t, func(t *testing.T, b *Backend) {
		// float32 throughout: the numeric checks' values are exact or
		// one rounding away.
		backendtest.Run(t, b, backendtest.Options{Tolerance: 1e-6})
	})
}
