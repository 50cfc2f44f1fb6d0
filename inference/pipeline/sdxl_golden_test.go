package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// sdxlGolden is testdata/golden_sdxl_tiny.json, written by
// hack/golden/sdxl_reference.py from the tiny SDXL test model (seed 7,
// diffusers layout) with PyTorch.
type sdxlGolden struct {
	golden
	TokenIDs2   [][]int      `json:"tokenIds2"`
	Pad2        int          `json:"pad2"`
	TimeIDs     []int        `json:"timeIds"`
	Embeddings1 goldenSample `json:"embeddings1"`
	Embeddings2 goldenSample `json:"embeddings2"`
	Pooled      goldenSample `json:"pooled"`
}

func readSDXLGolden(t *testing.T) sdxlGolden {
	t.Helper()
	data, err := os.ReadFile("testdata/golden_sdxl_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var g sdxlGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if g.Model.Seed != testModelSeed {
		t.Fatalf("golden values are for model seed %d, the test model has %d", g.Model.Seed, testModelSeed)
	}
	return g
}

// splitColumns separates a [..., a+b] tensor's rows into [..., a] and [..., b].
func splitColumns(data []float32, a, b int) ([]float32, []float32) {
	var left, right []float32
	for i := 0; i+a+b <= len(data); i += a + b {
		left = append(left, data[i:i+a]...)
		right = append(right, data[i+a:i+a+b]...)
	}
	return left, right
}

// The SDXL pipeline on the CPU backend holds the PyTorch reference's values
// within 1e-3, from both layouts of the same model: the tokens of both
// tokenizers (the second pads with "!"), each encoder's penultimate hidden
// state, the pooled embedding, the UNet's output at each step (which goes
// through the text_time embedding), the latents after two steps and the
// decoded image.
func TestSDXLMatchesPythonReference(t *testing.T) {
	g := readSDXLGolden(t)
	for _, layout := range []checkpoint.Layout{checkpoint.Diffusers, checkpoint.SingleFile} {
		t.Run(string(layout), func(t *testing.T) {
			p, err := Open(sdxlModels[layout], newBackend(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			r := g.Request
			for i, text := range []string{r.NegativePrompt, r.Prompt} {
				enc := p.tok.Encode(text)
				if fmt.Sprint(enc.IDs[:enc.Length]) != fmt.Sprint(g.TokenIDs[i]) {
					t.Errorf("token ids of %q: %v, reference %v", text, enc.IDs[:enc.Length], g.TokenIDs[i])
				}
				if enc2 := p.tok2.Encode(text); fmt.Sprint(enc2.IDs) != fmt.Sprint(g.TokenIDs2[i]) {
					t.Errorf("second tokenizer's ids of %q: %v, reference %v", text, enc2.IDs, g.TokenIDs2[i])
				}
			}
			if p.tok2.PadID() != g.Pad2 || g.Pad2 == p.tok.PadID() {
				t.Errorf("second tokenizer pads with %d, reference %d, first tokenizer %d", p.tok2.PadID(), g.Pad2, p.tok.PadID())
			}
			req := Request{Prompt: r.Prompt, NegativePrompt: r.NegativePrompt, Width: r.Width, Height: r.Height, Steps: r.Steps,
				Guidance: r.Guidance, Sampler: r.Sampler, Seed: r.Seed, RNG: r.RNG}
			var emb, pooled, image []float32
			var embWidth int
			preds := map[int][]float32{}
			latents := map[int][]float32{}
			out, err := p.Generate(context.Background(), req, Hooks{
				Embeddings: func(e *tensor.Tensor) { emb, embWidth = append([]float32(nil), e.Data...), e.Shape[2] },
				Pooled:     func(e *tensor.Tensor) { pooled = append([]float32(nil), e.Data...) },
				Prediction: func(i int, pred []float32) { preds[i] = append([]float32(nil), pred...) },
				Step:       func(i int, _, l []float32) { latents[i] = append([]float32(nil), l...) },
				Image:      func(img *tensor.Tensor) { image = append([]float32(nil), img.Data...) },
			})
			if err != nil {
				t.Fatal(err)
			}
			w1 := p.Model().TextEncoder.HiddenSize
			if embWidth != w1+p.Model().TextEncoder2.HiddenSize {
				t.Fatalf("context width %d, want %d + %d", embWidth, w1, p.Model().TextEncoder2.HiddenSize)
			}
			e1, e2 := splitColumns(emb, w1, embWidth-w1)
			compareSample(t, "CLIP ViT-L penultimate hidden state", e1, g.Embeddings1)
			compareSample(t, "OpenCLIP bigG penultimate hidden state", e2, g.Embeddings2)
			compareSample(t, "pooled text embedding", pooled, g.Pooled)
			if len(g.Steps) != r.Steps {
				t.Fatalf("golden file has %d steps, request %d", len(g.Steps), r.Steps)
			}
			for i, s := range g.Steps {
				compareSample(t, fmt.Sprintf("step %d unet output", i+1), preds[i], s.UNetOutput)
				compareSample(t, fmt.Sprintf("step %d latents", i+1), latents[i], s.Latents)
			}
			compareSample(t, "decoded image", image, g.Image)
			comparePixels(t, out.Image.Pix, g.golden)

			png, err := ImagePNG(out.Image, req, string(p.Model().Family))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(png), "Model: SDXL") {
				t.Errorf("PNG parameters do not name SDXL")
			}
		})
	}
}

// comparePixels holds 8-bit RGB pixels (from NRGBA) to the reference's,
// allowing values one level apart on rounding boundaries (see maxOffByOne);
// the SD 1.x and SDXL golden tests share it.
func comparePixels(t *testing.T, nrgba []byte, g golden) {
	t.Helper()
	pix := make([]byte, 0, len(nrgba)/4*3)
	for i := 0; i < len(nrgba); i += 4 {
		pix = append(pix, nrgba[i:i+3]...)
	}
	want, err := base64.StdEncoding.DecodeString(g.ImagePixels)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(want); hex.EncodeToString(sum[:]) != g.ImagePixelsSHA256 {
		t.Fatalf("golden file: imagePixels does not hash to imagePixelsSHA256")
	}
	if len(want) != len(pix) {
		t.Fatalf("image has %d values, reference %d", len(pix), len(want))
	}
	offByOne := 0
	for i := range pix {
		switch d := int(pix[i]) - int(want[i]); {
		case d == 0:
		case d == 1 || d == -1:
			offByOne++
		default:
			t.Fatalf("image value %d is %d, reference %d", i, pix[i], want[i])
		}
	}
	sum := sha256.Sum256(pix)
	t.Logf("image sha256 %x, reference %s; %d of %d values one level apart", sum, g.ImagePixelsSHA256, offByOne, len(pix))
	if float64(offByOne) > maxOffByOne*float64(len(pix)) {
		t.Errorf("%d of %d image values differ from the reference by one level, more than %.1f%%", offByOne, len(pix), 100*maxOffByOne)
	}
}

// With guidance and no negative prompt, SDXL's unconditional context and
// pooled embedding are zeros (the released pipeline's
// force_zeros_for_empty_prompt), while the prompt's rows are encoded.
func TestSDXLEmptyNegativePromptIsZeros(t *testing.T) {
	p, err := Open(sdxlModels[checkpoint.Diffusers], newBackend(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	req := baseRequest()
	req.NegativePrompt, req.Steps = "", 1
	var emb, pooled *tensor.Tensor
	if _, err := p.Generate(context.Background(), req, Hooks{
		Embeddings: func(e *tensor.Tensor) { emb = e.Clone() },
		Pooled:     func(e *tensor.Tensor) { pooled = e.Clone() },
	}); err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*tensor.Tensor{"context": emb, "pooled": pooled} {
		if x.Shape[0] != 2 {
			t.Fatalf("%s batch %d, want 2", name, x.Shape[0])
		}
		row := len(x.Data) / 2
		zeros, nonzero := true, false
		for i, v := range x.Data {
			if i < row && v != 0 {
				zeros = false
			}
			if i >= row && v != 0 {
				nonzero = true
			}
		}
		if !zeros || !nonzero {
			t.Errorf("%s: unconditional row all zeros %v, prompt row encoded %v", name, zeros, nonzero)
		}
	}
}
