package checkpoint_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func generate(t *testing.T, layout checkpoint.Layout, seed uint64) string {
	t.Helper()
	p, err := testmodel.Generate(filepath.Join(t.TempDir(), string(layout)), testmodel.Options{Size: testmodel.Tiny, Layout: layout, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, path string) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// rewrite replaces a safetensors file by the result of mutate applied to
// its tensors (whose bytes are copies, free to change).
func rewrite(t *testing.T, path string, mutate func([]safetensors.TensorData) []safetensors.TensorData) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.TensorData
	for _, name := range f.Names() {
		tn, _ := f.Tensor(name)
		ts = append(ts, safetensors.TensorData{
			Spec: safetensors.Spec{Name: name, DType: tn.DType, Shape: append([]int64{}, tn.Shape...)},
			Data: append([]byte{}, tn.Data...),
		})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(path, mutate(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func without(names ...string) func([]safetensors.TensorData) []safetensors.TensorData {
	return func(ts []safetensors.TensorData) []safetensors.TensorData {
		drop := map[string]bool{}
		for _, n := range names {
			drop[n] = true
		}
		var out []safetensors.TensorData
		for _, t := range ts {
			if !drop[t.Name] {
				out = append(out, t)
			}
		}
		return out
	}
}

// writeArchitecture writes a single file (layout SingleFile) or diffusers
// component files holding random F32 tensors for every tensor the
// architecture stores, for families the test-model generator does not make.
func writeArchitecture(t *testing.T, layout checkpoint.Layout, a checkpoint.Architecture, extra map[string][]int64) string {
	t.Helper()
	stored, err := checkpoint.ExpectedTensors(layout, a)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := func(shape []int64) []byte {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = r.Float32()
		}
		b, _ := safetensors.Float32Bytes(safetensors.F32, v)
		return b
	}
	dir := t.TempDir()
	files := map[string][]safetensors.TensorData{}
	for _, s := range stored {
		file := filepath.Join(dir, "model.safetensors")
		if layout == checkpoint.Diffusers {
			base := "diffusion_pytorch_model.safetensors"
			if s.Component == checkpoint.TextEncoder || s.Component == checkpoint.TextEncoder2 {
				base = "model.safetensors"
			}
			file = filepath.Join(dir, string(s.Component), base)
		}
		files[file] = append(files[file], safetensors.TensorData{Spec: safetensors.Spec{Name: s.Name, DType: safetensors.F32, Shape: s.Shape}, Data: data(s.Shape)})
	}
	for name, shape := range extra {
		p := filepath.Join(dir, "model.safetensors")
		files[p] = append(files[p], safetensors.TensorData{Spec: safetensors.Spec{Name: name, DType: safetensors.F32, Shape: shape}, Data: data(shape)})
	}
	for p, ts := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.WriteFile(p, ts, nil); err != nil {
			t.Fatal(err)
		}
		if layout == checkpoint.Diffusers {
			if err := os.WriteFile(filepath.Join(filepath.Dir(p), "config.json"), []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if layout == checkpoint.Diffusers {
		index := `{"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"]`
		if a.TextEncoder2 != nil {
			index += `, "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer_2": ["transformers", "CLIPTokenizer"]`
		}
		if err := os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(index+"}"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return filepath.Join(dir, "model.safetensors")
}
