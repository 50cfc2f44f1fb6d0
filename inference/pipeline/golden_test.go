package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// goldenSample is every Stride-th value of a flattened tensor.
type goldenSample struct {
	Stride int       `json:"stride"`
	Values []float64 `json:"values"`
}

// golden is testdata/golden_tiny.json, written by hack/golden/sd_reference.py
// from the tiny test model (seed 7, diffusers layout) with PyTorch.
type golden struct {
	Model struct {
		Seed uint64 `json:"seed"`
	} `json:"model"`
	Request struct {
		Prompt         string  `json:"prompt"`
		NegativePrompt string  `json:"negativePrompt"`
		Width          int     `json:"width"`
		Height         int     `json:"height"`
		Steps          int     `json:"steps"`
		Guidance       float64 `json:"guidance"`
		Sampler        string  `json:"sampler"`
		Seed           uint64  `json:"seed"`
		RNG            string  `json:"rng"`
	} `json:"request"`
	TokenIDs       [][]int      `json:"tokenIds"`
	Embeddings     goldenSample `json:"embeddings"`
	InitialLatents goldenSample `json:"initialLatents"`
	Steps          []struct {
		UNetOutput goldenSample `json:"unetOutput"`
		GuidedEps  goldenSample `json:"guidedEps"`
		Latents    goldenSample `json:"latents"`
	} `json:"steps"`
	Image             goldenSample `json:"image"`
	ImagePixelsSHA256 string       `json:"imagePixelsSHA256"`
	ImagePixels       string       `json:"imagePixels"`
}

// maxOffByOne bounds the share of 8-bit values allowed to differ from the
// reference by one level: floats that agree to about 1e-5 still round to
// different levels when they straddle a .5 boundary, roughly 2·255·1e-5 of
// the time, so an exact image hash is out of reach for independent code.
const maxOffByOne = 0.005

const goldenTolerance = 1e-3

func compareSample(t *testing.T, what string, got []float32, want goldenSample) {
	t.Helper()
	if want.Stride < 1 || len(want.Values) == 0 {
		t.Fatalf("%s: golden sample is empty", what)
	}
	worst, at := 0.0, 0
	for i, w := range want.Values {
		k := i * want.Stride
		if k >= len(got) {
			t.Fatalf("%s: golden value %d is at index %d but only %d values were produced", what, i, k, len(got))
		}
		if d := math.Abs(float64(got[k]) - w); d > worst || math.IsNaN(d) {
			worst, at = d, k
			if math.IsNaN(d) {
				worst = math.Inf(1)
			}
		}
	}
	if worst > goldenTolerance {
		t.Errorf("%s: value %d is %v, reference %v (difference %.3g > %g)", what, at, got[at], want.Values[at/want.Stride], worst, goldenTolerance)
	}
	t.Logf("%s: %d values, largest difference %.3g", what, len(want.Values), worst)
}

func TestMatchesPythonReference(t *testing.T) {
	data, err := os.ReadFile("testdata/golden_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if g.Model.Seed != testModelSeed {
		t.Fatalf("golden values are for model seed %d, the test model has %d", g.Model.Seed, testModelSeed)
	}
	p := open(t, checkpoint.Diffusers, false)

	for i, text := range []string{g.Request.NegativePrompt, g.Request.Prompt} {
		enc := p.tok.Encode(text)
		if fmt.Sprint(enc.IDs[:enc.Length]) != fmt.Sprint(g.TokenIDs[i]) {
			t.Errorf("token ids of %q: %v, reference %v", text, enc.IDs[:enc.Length], g.TokenIDs[i])
		}
	}

	r := g.Request
	req := Request{Prompt: r.Prompt, NegativePrompt: r.NegativePrompt, Width: r.Width, Height: r.Height, Steps: r.Steps,
		Guidance: r.Guidance, Sampler: r.Sampler, Seed: r.Seed, RNG: r.RNG}
	var emb, initial, image []float32
	preds := map[int][]float32{}
	eps := map[int][]float32{}
	latents := map[int][]float32{}
	out, err := p.Generate(context.Background(), req, Hooks{
		Embeddings:     func(e *tensor.Tensor) { emb = append([]float32(nil), e.Data...) },
		InitialLatents: func(l []float32) { initial = append([]float32(nil), l...) },
		Prediction:     func(i int, pred []float32) { preds[i] = append([]float32(nil), pred...) },
		Step: func(i int, e, l []float32) {
			eps[i] = append([]float32(nil), e...)
			latents[i] = append([]float32(nil), l...)
		},
		Image: func(img *tensor.Tensor) { image = append([]float32(nil), img.Data...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	compareSample(t, "text embeddings", emb, g.Embeddings)
	compareSample(t, "initial latents", initial, g.InitialLatents)
	if len(g.Steps) != r.Steps {
		t.Fatalf("golden file has %d steps, request %d", len(g.Steps), r.Steps)
	}
	for i, s := range g.Steps {
		compareSample(t, fmt.Sprintf("step %d unet output", i+1), preds[i], s.UNetOutput)
		compareSample(t, fmt.Sprintf("step %d guided noise", i+1), eps[i], s.GuidedEps)
		compareSample(t, fmt.Sprintf("step %d latents", i+1), latents[i], s.Latents)
	}
	compareSample(t, "decoded image", image, g.Image)

	comparePixels(t, out.Image.Pix, g)
}
