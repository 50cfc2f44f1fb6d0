package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/testmodel"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// models holds the tiny test model in both layouts, generated once.
// testModelSeed is the seed of the tiny test model, the one the golden values were computed for.
const testModelSeed = 7

var testModels = map[checkpoint.Layout]string{}

// sdxlModels holds the tiny SDXL test model (seed testModelSeed) in both layouts.
var sdxlModels = map[checkpoint.Layout]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pipeline-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, l := range []checkpoint.Layout{checkpoint.Diffusers, checkpoint.SingleFile} {
		p, err := testmodel.Generate(filepath.Join(dir, string(l)), testmodel.Options{Size: testmodel.Tiny, Layout: l, Seed: testModelSeed})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		testModels[l] = p
		xl, err := testmodel.Generate(filepath.Join(dir, "sdxl-"+string(l)), testmodel.Options{Family: checkpoint.SDXL, Size: testmodel.Tiny, Layout: l, Seed: testModelSeed})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sdxlModels[l] = xl
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func newBackend(t *testing.T) *cpu.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func open(t *testing.T, layout checkpoint.Layout, keep bool) *Pipeline {
	t.Helper()
	p, err := Open(testModels[layout], newBackend(t), Options{KeepModels: keep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func baseRequest() Request {
	return Request{Prompt: "a red fox in the snow", NegativePrompt: "blurry", Width: 64, Height: 48, Steps: 3, Guidance: 7.5, Sampler: "ddim", Seed: 42}
}

func generatePNG(t *testing.T, p *Pipeline, req Request) []byte {
	t.Helper()
	out, err := p.Generate(context.Background(), req, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := ImagePNG(out.Image, req, string(p.Model().Family))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBothLayoutsGiveIdenticalBytes(t *testing.T) {
	req := baseRequest()
	a := generatePNG(t, open(t, checkpoint.Diffusers, false), req)
	b := generatePNG(t, open(t, checkpoint.SingleFile, false), req)
	if !bytes.Equal(a, b) {
		t.Fatalf("diffusers and single-file PNGs differ: sha256 %x vs %x", sha256.Sum256(a), sha256.Sum256(b))
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != req.Width || got.Y != req.Height {
		t.Fatalf("image size %v, want %dx%d", got, req.Width, req.Height)
	}
}

func TestSeedsAndSamplers(t *testing.T) {
	p := open(t, checkpoint.Diffusers, true)
	seen := map[[32]byte]string{}
	for _, s := range []string{"ddim", "euler-ancestral", "dpmpp-2m-karras"} {
		for _, rng := range []string{"sdfleet", "torch"} {
			for _, seed := range []uint64{1, 2} {
				req := baseRequest()
				req.Sampler, req.RNG, req.Seed = s, rng, seed
				name := fmt.Sprintf("%s/%s/seed %d", s, rng, seed)
				first := generatePNG(t, p, req)
				again := generatePNG(t, p, req)
				if !bytes.Equal(first, again) {
					t.Errorf("%s: the same request gave different bytes", name)
				}
				h := sha256.Sum256(pixels(t, first))
				if other, dup := seen[h]; dup {
					t.Errorf("%s: same image as %s", name, other)
				}
				seen[h] = name
			}
		}
	}
}

func pixels(t *testing.T, data []byte) []byte {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			out = append(out, byte(r>>8), byte(g>>8), byte(bl>>8))
		}
	}
	return out
}

func TestInvalidRequests(t *testing.T) {
	p := open(t, checkpoint.Diffusers, true)
	for _, tc := range []struct {
		field  string
		change func(*Request)
	}{
		{"prompt", func(r *Request) { r.Prompt = "  " }},
		{"width", func(r *Request) { r.Width = 60 }},
		{"height", func(r *Request) { r.Height = 0 }},
		{"steps", func(r *Request) { r.Steps = 0 }},
		{"guidance", func(r *Request) { r.Guidance = -1 }},
		{"sampler", func(r *Request) { r.Sampler = "plms" }},
		{"rng", func(r *Request) { r.RNG = "cuda" }},
	} {
		req := baseRequest()
		tc.change(&req)
		_, err := p.Generate(context.Background(), req, Hooks{})
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%s: got %v, want an InputError for %s", tc.field, err, tc.field)
		}
	}
}

func TestMissingTensorNamesFileAndTensor(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "absent.safetensors"), newBackend(t), Options{})
	var me *ModelError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "absent.safetensors") {
		t.Fatalf("missing file: got %v, want a ModelError naming it", err)
	}
}

func TestProgressAndHooks(t *testing.T) {
	p := open(t, checkpoint.SingleFile, false)
	req := baseRequest()
	req.Steps = 4
	var progress []string
	var embShape []int
	var stepCalls []int
	out, err := p.Generate(context.Background(), req, Hooks{
		Progress:   func(pr Progress) { progress = append(progress, fmt.Sprintf("%d/%d", pr.Step, pr.Steps)) },
		Embeddings: func(e *tensor.Tensor) { embShape = e.Shape },
		Step:       func(i int, eps, latents []float32) { stepCalls = append(stepCalls, i) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(progress, " "); got != "1/4 2/4 3/4 4/4" {
		t.Errorf("progress %q, want one report per step", got)
	}
	if fmt.Sprint(embShape) != "[2 77 32]" {
		t.Errorf("embeddings shape %v, want [2 77 32] (unconditional and conditional)", embShape)
	}
	if fmt.Sprint(stepCalls) != "[0 1 2 3]" {
		t.Errorf("step hook calls %v", stepCalls)
	}
	if tm := out.Timings; tm.Load <= 0 || tm.Encode <= 0 || tm.Denoise <= 0 || tm.Decode <= 0 {
		t.Errorf("timings %+v: every phase of a first request takes time", tm)
	}
}

// poisonTensor copies the diffusers tiny model and overwrites the first
// value of one F32 tensor of a component with a NaN.
func poisonTensor(t *testing.T, component, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.CopyFS(dir, os.DirFS(testModels[checkpoint.Diffusers])); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, component, "diffusion_pytorch_model.safetensors")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	var header map[string]struct {
		DType   string `json:"dtype"`
		Offsets []int  `json:"data_offsets"`
	}
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	e, ok := header[name]
	if !ok || e.DType != "F32" {
		t.Fatalf("%s: no F32 tensor %q", path, name)
	}
	binary.LittleEndian.PutUint32(data[8+int(n)+e.Offsets[0]:], math.Float32bits(float32(math.NaN())))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNaNStopsWithTheStep(t *testing.T) {
	dir := poisonTensor(t, "unet", "conv_out.bias")
	p, err := Open(dir, newBackend(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Generate(context.Background(), baseRequest(), Hooks{})
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 1 || !strings.Contains(err.Error(), "step 1 of 3") {
		t.Fatalf("got %v, want a NonFiniteError at step 1 of 3", err)
	}
}

func TestPNGTextChunks(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	data, err := EncodePNG(img, []TextChunk{{"parameters", "café"}, {"sdfleet", "狐"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("tEXtparameters\x00caf\xe9")) {
		t.Error("Latin-1 text is not a tEXt chunk in ISO 8859-1")
	}
	if !bytes.Contains(data, []byte("iTXtsdfleet\x00\x00\x00\x00\x00狐")) {
		t.Error("non-Latin-1 text is not an iTXt chunk in UTF-8")
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("the PNG with text chunks does not decode (bad CRC or placement?): %v", err)
	}
	if _, err := EncodePNG(img, []TextChunk{{"", "x"}}); err == nil {
		t.Error("an empty keyword was accepted")
	}
	req := baseRequest()
	if got, want := Parameters(req), "a red fox in the snow\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 64x48"; got != want {
		t.Errorf("parameters %q, want %q", got, want)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "x.png")
	for _, content := range []string{"first", "second"} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files left in the folder, want only the image", len(entries))
	}
}

func TestLongPromptIsTruncatedNamingTheDroppedWords(t *testing.T) {
	p := open(t, checkpoint.Diffusers, true)
	req := baseRequest()
	req.Steps = 1
	// "a" is a single token: 75 of them fill the context, the rest is cut.
	req.Prompt = strings.Repeat("a ", 75) + "forest river"
	out, err := p.Generate(context.Background(), req, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Dropped) != 1 || strings.TrimSpace(out.Dropped[0]) != "forest river" {
		t.Fatalf("dropped %q, want [\"forest river\"]", out.Dropped)
	}
}

// TestSingleFileWithoutTokenizerUsesTheBuiltinVocabulary opens a
// single-file checkpoint shaped like a real one (CLIP's 49408 embedding
// rows, no tokenizer folder): it generates with the built-in vocabulary,
// cuts a long prompt at 75 tokens naming the rest, and a tokenizer folder
// put beside the file takes precedence.
func TestSingleFileWithoutTokenizerUsesTheBuiltinVocabulary(t *testing.T) {
	dir := t.TempDir()
	path, err := testmodel.Generate(dir, testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 3, CLIPVocab: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer")); !os.IsNotExist(err) {
		t.Fatalf("the generated model has a tokenizer folder (%v); the test needs none", err)
	}
	var logged []string
	log := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	p, err := Open(path, newBackend(t), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if got := p.Tokenizer().VocabSize(); got != tokenizer.BuiltinVocabSize {
		t.Fatalf("tokenizer has %d symbols, want the built-in %d", got, tokenizer.BuiltinVocabSize)
	}
	req := baseRequest()
	req.Steps = 1
	req.Prompt = strings.Repeat("cat ", 75) + "misty forest"
	out, err := p.Generate(context.Background(), req, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Dropped) != 1 || out.Dropped[0] != "misty forest" {
		t.Errorf("dropped %q, want [\"misty forest\"]", out.Dropped)
	}
	if !slices.ContainsFunc(logged, func(l string) bool {
		return strings.Contains(l, "truncated") && strings.Contains(l, `"dropped"="misty forest"`)
	}) {
		t.Errorf("no log line names the dropped words; logged %q", logged)
	}
	if out.Image == nil || out.Image.Bounds().Dx() != req.Width {
		t.Fatalf("no %d-wide image", req.Width)
	}

	if err := testmodel.WriteTokenizer(filepath.Join(dir, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	beside, err := Open(path, newBackend(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = beside.Close() })
	if got := beside.Tokenizer().VocabSize(); got != testmodel.SyntheticVocabSize() {
		t.Errorf("with a tokenizer folder beside the file: %d symbols, want the folder's %d", got, testmodel.SyntheticVocabSize())
	}
}

// TestSingleFileWithoutTokenizerNeedsCLIPEmbedding checks that the
// built-in vocabulary is not used for a text encoder of another size, nor
// when a tokenizer folder was named explicitly.
func TestSingleFileWithoutTokenizerNeedsCLIPEmbedding(t *testing.T) {
	dir := t.TempDir()
	path, err := testmodel.Generate(dir, testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "tokenizer")); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, newBackend(t), Options{})
	if err == nil || !strings.Contains(err.Error(), "tokenizer folder") {
		t.Errorf("tiny vocabulary without a folder: err = %v, want one naming the missing tokenizer folder", err)
	}
	clipPath, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 3, CLIPVocab: true})
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	_, err = Open(clipPath, newBackend(t), Options{Checkpoint: checkpoint.Options{TokenizerDir: missing}})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("explicit missing tokenizer folder: err = %v, want one naming %s", err, missing)
	}
}

func TestRejectsVPrediction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.CopyFS(dir, os.DirFS(testModels[checkpoint.Diffusers])); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "scheduler", "scheduler_config.json")
	if err := os.WriteFile(cfg, []byte(`{"prediction_type": "v_prediction"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, newBackend(t), Options{})
	var me *ModelError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "v_prediction") || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("got %v, want a ModelError naming %s and v_prediction", err, cfg)
	}
}
