package vulkan

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/pipeline"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

type goldenSample struct {
	Stride int       `json:"stride"`
	Values []float64 `json:"values"`
}

// sdxlGoldenFile is the PyTorch SDXL reference the CPU backend holds within
// 1e-3 (inference/pipeline/testdata, written by
// hack/golden/sdxl_reference.py).
type sdxlGoldenFile struct {
	Pooled goldenSample `json:"pooled"`
	Steps  []struct {
		UNetOutput goldenSample `json:"unetOutput"`
		Latents    goldenSample `json:"latents"`
	} `json:"steps"`
	Image   goldenSample     `json:"image"`
	Request pipeline.Request `json:"request"`
}

func worstDifference(got []float32, want goldenSample) float64 {
	worst := 0.0
	for i, w := range want.Values {
		d := math.Abs(float64(got[i*want.Stride]) - w)
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

// The tiny SDXL model on Vulkan, from both layouts, against the committed
// PyTorch goldens (fp32 weights). The device keeps weights in fp16, as it
// does for SD 1.x, and its activations in fp16 everywhere but the VAE
// decode, which SDXL asks to run with fp32 activations. An fp16 weight is
// off by up to 2⁻¹¹ relative and an fp16 activation by up to 2⁻¹¹ at every
// layer; classifier-free guidance at 7.5 multiplies the difference of the
// two predictions, so through two steps the latents move by up to the 0.1
// the SD 1.x goldens allow on this backend with fp16 activations
// (TestTinyPipelineHoldsTheGoldenValues). Measured on lavapipe: pooled
// embedding 2.4e-3 (bound 1e-2), UNet output 1.3e-2 (bound 3e-2), latents
// 5.1e-2 (bound 0.1), image in [0, 1] 4.5e-3 (bound 1e-2). The decoded
// image must hold no NaN or Inf: the SDXL VAE is the network known to
// overflow fp16 (with random weights this one cannot, so the check guards
// the decode path, not the published weights' range).
func TestTinySDXLPipelineHoldsTheGoldenValues(t *testing.T) {
	d := device(t)
	data, err := os.ReadFile("../../pipeline/testdata/golden_sdxl_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var g sdxlGoldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	for _, layout := range []checkpoint.Layout{checkpoint.Diffusers, checkpoint.SingleFile} {
		t.Run(string(layout), func(t *testing.T) {
			model, err := testmodel.Generate(filepath.Join(t.TempDir(), "sdxl"), testmodel.Options{Family: checkpoint.SDXL, Size: testmodel.Tiny, Layout: layout, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			b := &Backend{d: d}
			p, err := pipeline.Open(model, b, pipeline.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Close() }()
			var pooled, image []float32
			preds := map[int][]float32{}
			latents := map[int][]float32{}
			if _, err := p.Generate(context.Background(), g.Request, pipeline.Hooks{
				Pooled:     func(e *tensor.Tensor) { pooled = append([]float32(nil), e.Data...) },
				Prediction: func(i int, pred []float32) { preds[i] = append([]float32(nil), pred...) },
				Step:       func(i int, _, l []float32) { latents[i] = append([]float32(nil), l...) },
				Image:      func(e *tensor.Tensor) { image = append([]float32(nil), e.Data...) },
			}); err != nil {
				t.Fatal(err)
			}
			check := func(what string, got []float32, want goldenSample, bound float64) {
				t.Helper()
				w := worstDifference(got, want)
				t.Logf("%s: largest difference from the golden values %.3g", what, w)
				if w > bound {
					t.Errorf("%s: largest difference from the golden values %.3g, want at most %g", what, w, bound)
				}
			}
			check("pooled text embedding", pooled, g.Pooled, 1e-2)
			for i, s := range g.Steps {
				check("unet output", preds[i], s.UNetOutput, 3e-2)
				check("latents", latents[i], s.Latents, 0.1)
			}
			check("decoded image", image, g.Image, 1e-2)
			for i, v := range image {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("decoded image value %d is %v", i, v)
				}
			}
			if b.PeakMemoryBytes() <= 0 {
				t.Errorf("peak device memory %d", b.PeakMemoryBytes())
			}
		})
	}
}
