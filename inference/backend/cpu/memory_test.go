package cpu

import (
	"fmt"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/cpu/gemm"
	"github.com/sdfleet/sdfleet/inference/backend/cpu/workpool"
)

// SD 1.5's largest buffers must stay far from quadratic: no scratch buffer
// may exceed 64 MiB at its sizes.
func TestScratchStaysBoundedAtSDSizes(t *testing.T) {
	const limit = 64 << 20
	pool := workpool.New(1)
	defer pool.Close()
	attention := []struct {
		name                 string
		batch, heads, tokens int
		width                int
	}{
		{"unet 64x64 self-attention, CFG batch", 2, 8, 4096, 40},
		{"unet 32x32 self-attention", 2, 8, 1024, 80},
		{"vae mid-block attention", 2, 1, 4096, 512},
		{"text encoder", 2, 12, 77, 64},
	}
	for _, kern := range gemm.Kernels() {
		if got := gemm.NewEngine(pool, kern).ScratchBytes(); got > limit {
			t.Fatalf("%s: engine scratch %d bytes per worker exceeds %d", kern.Name, got, limit)
		}
		for _, a := range attention {
			t.Run(fmt.Sprintf("%s/%s", kern.Name, a.name), func(t *testing.T) {
				bytes := 4 * attentionPackFloats(kern, a.batch, a.heads, a.tokens, a.width)
				inputs := 4 * 2 * a.batch * a.tokens * a.heads * a.width // k and v
				if bytes > limit {
					t.Fatalf("packed keys and values take %d bytes, over %d", bytes, limit)
				}
				// Padding the head width to whole panels may cost up to
				// 2× for narrow heads, never a factor of the token count.
				if bytes > 2*inputs {
					t.Fatalf("packed keys and values take %d bytes for %d bytes of k and v", bytes, inputs)
				}
			})
		}
	}
}
