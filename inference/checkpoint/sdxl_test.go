package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

func generateXL(t *testing.T, layout checkpoint.Layout, dt safetensors.DType) string {
	t.Helper()
	p, err := testmodel.Generate(filepath.Join(t.TempDir(), string(layout)), testmodel.Options{Family: checkpoint.SDXL, Size: testmodel.Tiny, Layout: layout, Seed: 5, DType: dt})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSDXLBothLayoutsAndDTypesLoadToIdenticalCanonicalTensors(t *testing.T) {
	want, err := testmodel.ArchitectureFor(checkpoint.SDXL, testmodel.Tiny)
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.F16} {
		t.Run(string(dt), func(t *testing.T) {
			diff := open(t, generateXL(t, checkpoint.Diffusers, dt))
			single := open(t, generateXL(t, checkpoint.SingleFile, dt))
			for _, m := range []*checkpoint.Model{diff, single} {
				if m.Family != checkpoint.SDXL {
					t.Errorf("%s: family %s, want sdxl", m.Layout, m.Family)
				}
				if got := m.Architecture(); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: inferred architecture\n%+v\n%+v\nwant\n%+v\n%+v", m.Layout, got, *got.TextEncoder2, want, *want.TextEncoder2)
				}
				for _, c := range []checkpoint.Component{checkpoint.TextEncoder, checkpoint.TextEncoder2} {
					dir, err := m.TokenizerDir(c)
					if err != nil {
						t.Fatalf("%s: %v", m.Layout, err)
					}
					tok, err := tokenizer.LoadAny(dir)
					if err != nil {
						t.Fatal(err)
					}
					wantPad := tok.EndID()
					if c == checkpoint.TextEncoder2 {
						wantPad = 0 // "!"
					}
					if tok.PadID() != wantPad {
						t.Errorf("%s %s: pads with id %d, want %d", m.Layout, c, tok.PadID(), wantPad)
					}
				}
			}
			if got := fmt.Sprint(diff.Components()); got != "[unet vae text_encoder text_encoder_2]" || got != fmt.Sprint(single.Components()) {
				t.Fatalf("components %v vs %v", diff.Components(), single.Components())
			}
			for _, c := range diff.Components() {
				names := diff.Names(c)
				if !reflect.DeepEqual(names, single.Names(c)) {
					t.Fatalf("%s: canonical names differ between layouts", c)
				}
				for _, n := range names {
					a, _ := diff.Tensor(c, n)
					b, _ := single.Tensor(c, n)
					if a.DType != dt || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Bytes(), b.Bytes()) {
						t.Fatalf("%s %s differs: %s%v from %s vs %s%v from %s", c, n, a.DType, a.Shape, a.Source, b.DType, b.Shape, b.Source)
					}
				}
			}
			// OpenCLIP's fused in_proj and transposed projection in the single file.
			k, err := single.Tensor(checkpoint.TextEncoder2, "text_model.encoder.layers.1.self_attn.k_proj.weight")
			if err != nil || k.Source != "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight" {
				t.Errorf("text_encoder_2 k_proj: %+v, %v", k, err)
			}
			p, err := single.Tensor(checkpoint.TextEncoder2, "text_projection.weight")
			if err != nil || p.Source != "conditioner.embedders.1.model.text_projection" {
				t.Errorf("text_projection: %+v, %v", p, err)
			}
			l, err := single.Tensor(checkpoint.UNet, "add_embedding.linear_1.weight")
			if err != nil || l.Source != "model.diffusion_model.label_emb.0.0.weight" || !reflect.DeepEqual(l.Shape, []int64{128, 48 + 6*256}) {
				t.Errorf("add_embedding.linear_1: %+v, %v", l, err)
			}
		})
	}
}

// TestSDXLFullShapes checks the full SDXL base 1.0 tensors without
// generating them: the published UNet has 2,567,463,684 parameters, CLIP
// ViT-L 123,060,480 and OpenCLIP bigG with its projection 694,659,840; the
// VAE is SD's, 83,653,863. In fp16 that is about 6.9 GB.
func TestSDXLFullShapes(t *testing.T) {
	a, err := testmodel.ArchitectureFor(checkpoint.SDXL, testmodel.Full)
	if err != nil {
		t.Fatal(err)
	}
	want := map[checkpoint.Component]int64{
		checkpoint.UNet: 2567463684, checkpoint.VAE: 83653863, checkpoint.TextEncoder: 123060480, checkpoint.TextEncoder2: 694659840,
	}
	names := map[string]bool{}
	for _, layout := range []checkpoint.Layout{checkpoint.SingleFile, checkpoint.Diffusers} {
		ts, err := checkpoint.ExpectedTensors(layout, a)
		if err != nil {
			t.Fatal(err)
		}
		got := map[checkpoint.Component]int64{}
		for _, s := range ts {
			n := int64(1)
			for _, d := range s.Shape {
				n *= d
			}
			got[s.Component] += n
			names[s.Name] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parameters per component %v, want %v", layout, got, want)
		}
	}
	// Names of the released files.
	for _, n := range []string{
		"model.diffusion_model.label_emb.0.2.weight",
		"model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight",
		"model.diffusion_model.input_blocks.7.1.transformer_blocks.9.ff.net.2.weight",
		"model.diffusion_model.middle_block.1.transformer_blocks.9.norm3.bias",
		"model.diffusion_model.output_blocks.2.2.conv.weight",
		"model.diffusion_model.output_blocks.5.2.conv.weight",
		"conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight",
		"conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight",
		"conditioner.embedders.1.model.ln_final.weight",
		"add_embedding.linear_1.weight",
		"up_blocks.0.attentions.2.transformer_blocks.9.attn1.to_q.weight",
		"text_model.encoder.layers.31.self_attn.q_proj.weight",
	} {
		if !names[n] {
			t.Errorf("no tensor %s", n)
		}
	}
	bytes, err := testmodel.ByteSizeFor(checkpoint.SDXL, testmodel.Full, checkpoint.Diffusers)
	if err != nil {
		t.Fatal(err)
	}
	if bytes != 2*(2567463684+83653863+123060480+694659840) {
		t.Errorf("full SDXL is %d bytes in fp16", bytes)
	}
}

// An SDXL refiner, in either layout, is refused with an error that says
// the refiner is out of scope.
func TestSDXLRefinerIsRefused(t *testing.T) {
	single := generateXL(t, checkpoint.SingleFile, safetensors.F16)
	rewrite(t, single, func(ts []safetensors.TensorData) []safetensors.TensorData {
		var out []safetensors.TensorData
		for _, x := range ts {
			switch {
			case strings.HasPrefix(x.Name, "conditioner.embedders.0."):
				continue
			case strings.HasPrefix(x.Name, "conditioner.embedders.1."):
				x.Name = "conditioner.embedders.0." + strings.TrimPrefix(x.Name, "conditioner.embedders.1.")
			}
			out = append(out, x)
		}
		return out
	})
	diff := generateXL(t, checkpoint.Diffusers, safetensors.F16)
	index := filepath.Join(diff, "model_index.json")
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["_class_name"], m["text_encoder"], m["requires_aesthetics_score"] = "StableDiffusionXLImg2ImgPipeline", []any{nil, nil}, true
	data, _ = json.Marshal(m)
	if err := os.WriteFile(index, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{single, diff} {
		_, err := checkpoint.Open(path, checkpoint.Options{})
		if !errors.Is(err, checkpoint.ErrRefiner) || !strings.Contains(err.Error(), "refiner is out of scope") || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want the refiner refused", path, err)
		}
	}
}
