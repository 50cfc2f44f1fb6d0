package vulkan

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/pipeline"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

// run is one generation's observable results.
type run struct {
	latents [][]float32
	image   []byte // RGB
	// On Vulkan: the device's submits and memory allocations so far, at
	// the end of each step.
	submits, allocations []int
}

func generate(t *testing.T, b backend.Backend, model string, req pipeline.Request) run {
	t.Helper()
	p, err := pipeline.Open(model, b, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	var r run
	out, err := p.Generate(context.Background(), req, pipeline.Hooks{
		Step: func(_ int, _, l []float32) {
			r.latents = append(r.latents, append([]float32(nil), l...))
			if vb, ok := b.(*Backend); ok {
				r.submits = append(r.submits, vb.d.rec.submits)
				r.allocations = append(r.allocations, vb.d.allocations)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(out.Image.Pix); i += 4 {
		r.image = append(r.image, out.Image.Pix[i:i+3]...)
	}
	return r
}

// The tiny model's whole pipeline (text encoder, UNet, VAE) on Vulkan,
// with its default fp16 activations, against the CPU backend with the same
// seed, for the model stored in fp16 (weights identical on both sides) and
// in fp32 (the device rounds them to fp16, a relative 2⁻¹¹ per weight, the
// CPU keeps fp32).
//
// The latents live on the host in fp32, but every UNet prediction comes
// back through fp16 storage (a relative 2⁻¹¹ per stored activation, over
// the network's depth), and classifier-free guidance at 7.5 multiplies the
// difference of the two predictions, so their rounding, by up to 16 in the
// guided noise estimate. Measured largest latent difference over 3 steps
// on latents of O(1): 5.5e-2 with fp16 weights, 6.5e-2 with fp32 weights
// (fp32 activations: 4.8e-5 and 2.4e-2); bounded at 0.1 and 0.15. The
// image must reach 40 dB PSNR against the CPU's (measured 54.7 and
// 54.4 dB); a wrong kernel fails these bounds by orders of magnitude.
//
// Every step after the first is one submit (the whole guided UNet
// evaluation is one command buffer, waited for when the prediction is
// read) and allocates no device memory (its activations come from the
// pool the first step filled).
func TestTinyPipelineMatchesTheCPU(t *testing.T) {
	for _, tc := range []struct {
		dtype     safetensors.DType
		maxLatent float64
	}{
		{safetensors.F16, 0.1},
		{safetensors.F32, 0.15},
	} {
		t.Run(string(tc.dtype), func(t *testing.T) {
			d := device(t)
			model, err := testmodel.Generate(filepath.Join(t.TempDir(), "tiny"), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 7, DType: tc.dtype})
			if err != nil {
				t.Fatal(err)
			}
			req := pipeline.Request{Prompt: "a red fox in the snow", NegativePrompt: "blurry", Width: 64, Height: 48, Steps: 3, Guidance: 7.5, Sampler: "ddim", Seed: 42}
			c, err := cpu.New(cpu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := generate(t, c, model, req)
			// The shared device stays open for the other tests: no Close here.
			got := generate(t, &Backend{d: d}, model, req)

			worst := 0.0
			for s := range want.latents {
				for i, w := range want.latents[s] {
					worst = max(worst, math.Abs(float64(got.latents[s][i]-w)))
				}
			}
			t.Logf("submits %v allocations %v", got.submits, got.allocations)
			for s := 1; s < len(got.submits); s++ {
				if n := got.submits[s] - got.submits[s-1]; n != 1 {
					t.Errorf("step %d took %d submits, want 1", s+1, n)
				}
				if n := got.allocations[s] - got.allocations[s-1]; n != 0 {
					t.Errorf("step %d made %d device allocations, want none", s+1, n)
				}
			}
			t.Logf("largest latent difference over %d steps: %.3g", len(want.latents), worst)
			if worst > tc.maxLatent || math.IsNaN(worst) {
				t.Errorf("largest latent difference %.3g, want at most %g", worst, tc.maxLatent)
			}
			var se float64
			for i := range want.image {
				diff := float64(got.image[i]) - float64(want.image[i])
				se += diff * diff
			}
			psnr := math.Inf(1)
			if se > 0 {
				psnr = 10 * math.Log10(255*255/(se/float64(len(want.image))))
			}
			t.Logf("image PSNR against the CPU: %.1f dB", psnr)
			if psnr < 40 {
				t.Errorf("image PSNR %.1f dB against the CPU, want at least 40", psnr)
			}
		})
	}
}

// goldenFile is the PyTorch reference the CPU backend is held to
// (inference/pipeline/testdata, written by hack/golden/sd_reference.py).
type goldenFile struct {
	Steps []struct {
		Latents struct {
			Stride int       `json:"stride"`
			Values []float64 `json:"values"`
		} `json:"latents"`
	} `json:"steps"`
	Request pipeline.Request `json:"request"`
}

// The committed golden latents (PyTorch, fp32 weights and activations)
// hold on Vulkan within 3e-2 with fp32 activations instead of the CPU's
// 1e-3: the device rounds the weights to fp16, which moves the latents by
// up to 2.4e-2 against the CPU backend on the same model; measured 1.5e-2.
// That run is on the device whose binding limit is lowered, so the whole
// pipeline also runs through device addresses. With the default fp16
// activations the bound is 0.1, that of TestTinyPipelineMatchesTheCPU;
// measured 4.7e-2.
func TestTinyPipelineHoldsTheGoldenValues(t *testing.T) {
	data, err := os.ReadFile("../../pipeline/testdata/golden_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	model, err := testmodel.Generate(filepath.Join(t.TempDir(), "tiny"), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		f32    bool
		device func(*testing.T) *Device
		bound  float64
	}{
		{"f32_addressed", true, func(t *testing.T) *Device { return watch(t, addressing) }, 3e-2},
		{"f16", false, device, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backend{d: tc.device(t)}
			if tc.f32 {
				restore, err := backend.F32Activations(b)
				if err != nil {
					t.Fatal(err)
				}
				defer restore()
			}
			addressed := b.d.addressed
			got := generate(t, b, model, g.Request)
			if len(got.latents) != len(g.Steps) {
				t.Fatalf("%d steps, golden %d", len(got.latents), len(g.Steps))
			}
			worst := 0.0
			for s, step := range g.Steps {
				for i, w := range step.Latents.Values {
					worst = max(worst, math.Abs(float64(got.latents[s][i*step.Latents.Stride])-w))
				}
			}
			t.Logf("largest difference from the golden latents: %.3g", worst)
			if worst > tc.bound || math.IsNaN(worst) {
				t.Errorf("largest difference from the golden latents %.3g, want at most %g", worst, tc.bound)
			}
			if b.d.bindLimit < uint64(b.d.props.MaxStorageBufferRange) && b.d.addressed == addressed {
				t.Error("no dispatch used device addresses")
			}
		})
	}
}
