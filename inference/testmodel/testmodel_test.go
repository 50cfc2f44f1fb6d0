package testmodel

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// TestFullSizeTable checks the full model's dimensions without generating
// it: SD 1.5 has 1,066,235,307 parameters, 2 bytes each in fp16; the
// single file adds its schedule and bookkeeping buffers.
func TestFullSizeTable(t *testing.T) {
	const params = 859520964 + 83653863 + 123060480
	extras := int64(12*1000*4 + 4 + 4 + 77*8)
	for _, c := range []struct {
		layout checkpoint.Layout
		want   int64
	}{
		{checkpoint.Diffusers, 2 * params},
		{checkpoint.SingleFile, 2*params + extras},
	} {
		got, err := ByteSize(Full, c.layout)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.layout, got, c.want)
		}
	}
	if Full.DefaultDType() != safetensors.F16 || Tiny.DefaultDType() != safetensors.F32 {
		t.Error("default dtypes changed")
	}
	if _, err := ParseSize("huge"); err == nil {
		t.Error("ParseSize accepted an unknown size")
	}
}

func TestTinyFilesAndConfigs(t *testing.T) {
	dir := t.TempDir()
	p, err := Generate(dir, Options{Size: Tiny, Layout: checkpoint.Diffusers, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p != dir {
		t.Errorf("Generate returned %s, want %s", p, dir)
	}
	for _, f := range []string{
		"model_index.json", "scheduler/scheduler_config.json",
		"unet/config.json", "unet/diffusion_pytorch_model.safetensors",
		"vae/config.json", "vae/diffusion_pytorch_model.safetensors",
		"text_encoder/config.json", "text_encoder/model.safetensors",
		"tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
	} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	size, _ := ByteSize(Tiny, checkpoint.Diffusers)
	var onDisk int64
	for _, c := range []string{"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} {
		f, err := safetensors.Open(filepath.Join(dir, c))
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range f.Header().Tensors {
			onDisk += ti.End - ti.Begin
		}
		f.Close()
	}
	if onDisk != size {
		t.Errorf("tensor bytes on disk %d, ByteSize says %d", onDisk, size)
	}
	// A tiny model is a few megabytes.
	if size > 16<<20 {
		t.Errorf("tiny model is %d bytes", size)
	}

	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Architecture(Tiny)
	if tok.VocabSize() != a.TextEncoder.VocabSize || tok.EndID() != a.TextEncoder.VocabSize-1 {
		t.Errorf("tokenizer vocabulary %d (end %d), text encoder vocabulary %d", tok.VocabSize(), tok.EndID(), a.TextEncoder.VocabSize)
	}
	enc := tok.Encode("A photo of an astronaut riding a horse")
	for _, id := range enc.IDs {
		if id < 0 || id >= a.TextEncoder.VocabSize {
			t.Fatalf("token id %d outside the embedding", id)
		}
	}
	if got := strings.TrimSpace(tok.Decode(enc.IDs[1 : enc.Length-1])); got != "a photo of an astronaut riding a horse" {
		t.Errorf("round trip gave %q", got)
	}
	if enc.Length >= 2+len("a photo of an astronaut riding a horse") {
		t.Errorf("the synthetic merges do not shorten known words: %d tokens", enc.Length)
	}
}

func TestValuesAreDeterministicAndScaled(t *testing.T) {
	w := Values(9, "unet", "conv_in.weight", []int64{32, 4, 3, 3})
	if !reflect.DeepEqual(w, Values(9, "unet", "conv_in.weight", []int64{32, 4, 3, 3})) {
		t.Error("same seed and name gave different values")
	}
	if reflect.DeepEqual(w, Values(10, "unet", "conv_in.weight", []int64{32, 4, 3, 3})) {
		t.Error("different seeds gave the same values")
	}
	limit := math.Sqrt(3.0 / 36)
	var sumSq float64
	for _, v := range w {
		if math.Abs(float64(v)) > limit {
			t.Fatalf("weight %v beyond ±%v", v, limit)
		}
		sumSq += float64(v) * float64(v)
	}
	if variance := sumSq / float64(len(w)); variance < 0.5/36 || variance > 1.5/36 {
		t.Errorf("variance %v, want about 1/fan-in = %v", variance, 1.0/36)
	}
	for _, v := range Values(9, "vae", "decoder.conv_norm_out.weight", []int64{64}) {
		if v < 0.9 || v > 1.1 {
			t.Fatalf("norm weight %v not near 1", v)
		}
	}
	for _, v := range Values(9, "vae", "decoder.conv_norm_out.bias", []int64{64}) {
		if math.Abs(float64(v)) > 0.02 {
			t.Fatalf("bias %v not near 0", v)
		}
	}
}

func TestScheduleMatchesSD(t *testing.T) {
	s := schedule()
	betas, ac := s["betas"], s["alphas_cumprod"]
	if len(betas) != 1000 || math.Abs(float64(betas[0])-0.00085) > 1e-9 || math.Abs(float64(betas[999])-0.012) > 1e-7 {
		t.Errorf("betas run from %v to %v, want 0.00085 to 0.012", betas[0], betas[999])
	}
	// SD 1.x's final alphas_cumprod is about 0.0047.
	if math.Abs(float64(ac[999])-0.0047) > 0.0002 {
		t.Errorf("final alphas_cumprod %v, want about 0.0047", ac[999])
	}
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Size: "huge", Layout: checkpoint.Diffusers},
		{Size: Tiny, Layout: "zip"},
		{Size: Tiny, Layout: checkpoint.Diffusers, DType: safetensors.I8},
	} {
		if _, err := Generate(t.TempDir(), o); err == nil {
			t.Errorf("Generate(%+v) succeeded", o)
		}
	}
}
