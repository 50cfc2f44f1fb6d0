package checkpoint_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func TestBothLayoutsLoadToIdenticalCanonicalTensors(t *testing.T) {
	diff := open(t, generate(t, checkpoint.Diffusers, 7))
	single := open(t, generate(t, checkpoint.SingleFile, 7))
	want, _ := testmodel.Architecture(testmodel.Tiny)

	for _, m := range []*checkpoint.Model{diff, single} {
		if m.Family != checkpoint.SD1 {
			t.Errorf("%s: family %s, want sd1", m.Layout, m.Family)
		}
		if got := m.Architecture(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: inferred architecture\n%+v\nwant\n%+v", m.Layout, got, want)
		}
		if _, err := m.TokenizerDir(checkpoint.TextEncoder); err != nil {
			t.Errorf("%s: %v", m.Layout, err)
		}
	}
	if diff.Layout != checkpoint.Diffusers || single.Layout != checkpoint.SingleFile {
		t.Errorf("layouts detected as %s and %s", diff.Layout, single.Layout)
	}
	if !reflect.DeepEqual(diff.Components(), single.Components()) {
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
			if a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("%s %s differs: %s%v from %s vs %s%v from %s", c, n, a.DType, a.Shape, a.Source, b.DType, b.Shape, b.Source)
			}
		}
	}
	// The VAE attention is a 1x1 conv in the single file and reads as linear.
	q, err := single.Tensor(checkpoint.VAE, "decoder.mid_block.attentions.0.to_q.weight")
	if err != nil || q.Source != "first_stage_model.decoder.mid.attn_1.q.weight" || !reflect.DeepEqual(q.Shape, []int64{64, 64}) {
		t.Errorf("VAE to_q: %+v, %v", q, err)
	}
	if len(single.Ignored) != 15 {
		t.Errorf("single file ignored %d buffers (%v), want the 12 schedule buffers, 2 EMA counters and position_ids", len(single.Ignored), single.Ignored)
	}
}

func TestSeedChangesWeights(t *testing.T) {
	a := open(t, generate(t, checkpoint.SingleFile, 1))
	b := open(t, generate(t, checkpoint.SingleFile, 2))
	name := "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
	ta, _ := a.Tensor(checkpoint.UNet, name)
	tb, _ := b.Tensor(checkpoint.UNet, name)
	if bytes.Equal(ta.Bytes(), tb.Bytes()) {
		t.Error("seeds 1 and 2 gave identical weights")
	}
	f, err := ta.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if want := testmodel.Values(1, "unet", name, ta.Shape); !reflect.DeepEqual(f, want) {
		t.Error("Float32 does not return the generated values")
	}
}

func problemsOf(t *testing.T, err error) *checkpoint.ValidationError {
	t.Helper()
	var ve *checkpoint.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	return ve
}

func TestSingleFileProblemsReportedTogether(t *testing.T) {
	p := generate(t, checkpoint.SingleFile, 3)
	const (
		missing1 = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
		missing2 = "first_stage_model.decoder.up.1.block.0.nin_shortcut.weight"
		reshaped = "cond_stage_model.transformer.text_model.encoder.layers.3.mlp.fc1.weight"
		stray    = "model.diffusion_model.input_blocks.1.1.extra.weight"
	)
	rewrite(t, p, func(ts []safetensors.TensorData) []safetensors.TensorData {
		ts = without(missing1, missing2)(ts)
		for i := range ts {
			if ts[i].Name == reshaped {
				ts[i].Shape = []int64{ts[i].Shape[1], ts[i].Shape[0]}
			}
		}
		return append(ts, safetensors.TensorData{Spec: safetensors.Spec{Name: stray, DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)})
	})
	_, err := checkpoint.Open(p, checkpoint.Options{})
	ve := problemsOf(t, err)
	if ve.Count(checkpoint.Missing) != 2 || ve.Count(checkpoint.BadShape) != 1 || ve.Count(checkpoint.Unexpected) != 1 || len(ve.Problems) != 4 {
		t.Fatalf("problems: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`missing: unet "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight" (stored as "` + missing1 + `") in ` + p + `: want shape [32 32]`,
		`missing: vae "decoder.up_blocks.2.resnets.0.conv_shortcut.weight" (stored as "` + missing2 + `")`,
		`wrong shape: text_encoder "text_model.encoder.layers.3.mlp.fc1.weight" (stored as "` + reshaped + `") in ` + p + `: want shape [128 32], got [32 128]`,
		`unexpected: unet "` + stray + `" in ` + p,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestDiffusersProblems(t *testing.T) {
	dir := generate(t, checkpoint.Diffusers, 4)
	vaeFile := filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")
	rewrite(t, vaeFile, without("encoder.conv_in.bias"))
	cfg := filepath.Join(dir, "unet", "config.json")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(data, []byte(`"cross_attention_dim": 32`), []byte(`"cross_attention_dim": 768`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = checkpoint.Open(dir, checkpoint.Options{})
	ve := problemsOf(t, err)
	if ve.Count(checkpoint.Missing) != 1 || ve.Count(checkpoint.BadConfig) != 1 {
		t.Fatalf("problems: %v", err)
	}
	for _, want := range []string{
		`missing: vae "encoder.conv_in.bias" in ` + vaeFile,
		`config mismatch: unet in ` + cfg + `: want cross_attention_dim = 32 (from tensor shapes), got 768 in config.json`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
}

func TestCorruptFileNamesFileAndTensor(t *testing.T) {
	p := generate(t, checkpoint.SingleFile, 5)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data[:len(data)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = checkpoint.Open(p, checkpoint.Options{})
	var se *safetensors.Error
	if !errors.As(err, &se) || se.File != p || se.Tensor == "" || !strings.Contains(err.Error(), se.Tensor) {
		t.Errorf("truncated file: err = %v, want a safetensors error naming %s and a tensor", err, p)
	}
}

// TestOlderAndAlternativeSpellings loads files that store the VAE attention
// the other way: linear layers in a single file, and the old
// query/key/value/proj_attn names in a diffusers folder.
func TestOlderAndAlternativeSpellings(t *testing.T) {
	ref := open(t, generate(t, checkpoint.Diffusers, 6))
	p := generate(t, checkpoint.SingleFile, 6)
	rewrite(t, p, func(ts []safetensors.TensorData) []safetensors.TensorData {
		for i := range ts {
			if strings.Contains(ts[i].Name, "mid.attn_1.") && len(ts[i].Shape) == 4 {
				ts[i].Shape = ts[i].Shape[:2]
			}
		}
		return ts
	})
	single := open(t, p)

	dir := generate(t, checkpoint.Diffusers, 6)
	old := strings.NewReplacer(".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.", ".to_out.0.", ".proj_attn.")
	rewrite(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"), func(ts []safetensors.TensorData) []safetensors.TensorData {
		for i := range ts {
			if strings.Contains(ts[i].Name, "mid_block.attentions.0.") {
				ts[i].Name = old.Replace(ts[i].Name)
			}
		}
		return ts
	})
	oldNames := open(t, dir)
	for _, m := range []*checkpoint.Model{single, oldNames} {
		for _, n := range []string{"encoder.mid_block.attentions.0.to_out.0.weight", "decoder.mid_block.attentions.0.to_v.bias"} {
			a, _ := ref.Tensor(checkpoint.VAE, n)
			b, err := m.Tensor(checkpoint.VAE, n)
			if err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) || !reflect.DeepEqual(a.Shape, b.Shape) {
				t.Errorf("%s: %s = %+v, %v", m.Path, n, b, err)
			}
		}
	}
}

func TestFP16VariantAndOptions(t *testing.T) {
	dir, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 1, DType: safetensors.F16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors")); err != nil {
		t.Fatal(err)
	}
	for _, variant := range []string{"", "fp16"} {
		m, err := checkpoint.Open(dir, checkpoint.Options{Variant: variant})
		if err != nil {
			t.Fatalf("variant %q: %v", variant, err)
		}
		tn, _ := m.Tensor(checkpoint.TextEncoder, "text_model.final_layer_norm.weight")
		if tn.DType != safetensors.F16 {
			t.Errorf("dtype %s, want F16", tn.DType)
		}
		m.Close()
	}

	p := generate(t, checkpoint.SingleFile, 1)
	m, err := checkpoint.Open(p, checkpoint.Options{TokenizerDir: filepath.Join(t.TempDir(), "nowhere")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.TokenizerDir(checkpoint.TextEncoder); err == nil || !strings.Contains(err.Error(), "nowhere") || !strings.Contains(err.Error(), "single-file") {
		t.Errorf("missing tokenizer folder: err = %v", err)
	}
	if _, err := m.TokenizerDir(checkpoint.TextEncoder2); err == nil {
		t.Error("an SD 1.x model offered a second tokenizer")
	}
	if _, err := m.Tensor(checkpoint.UNet, "no.such.weight"); err == nil || !strings.Contains(err.Error(), "no.such.weight") {
		t.Errorf("unknown tensor: err = %v", err)
	}
}

func TestOpenRejectsOtherInputs(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.ckpt")
	if err := os.WriteFile(ckpt, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	notSD := filepath.Join(dir, "other.safetensors")
	if err := safetensors.WriteFile(notSD, []safetensors.TensorData{{Spec: safetensors.Spec{Name: "w", DType: safetensors.F32, Shape: []int64{1}}, Data: make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		dir:                           "model_index.json",
		ckpt:                          "pickle",
		notSD:                         "no tensors under",
		filepath.Join(dir, "missing"): "no such file",
	} {
		if _, err := checkpoint.Open(path, checkpoint.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): err = %v, want it to mention %q", path, err, want)
		}
	}
	// A diffusers folder without a component's weights.
	d := generate(t, checkpoint.Diffusers, 1)
	if err := os.Remove(filepath.Join(d, "text_encoder", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Open(d, checkpoint.Options{}); err == nil || !strings.Contains(err.Error(), "text_encoder") {
		t.Errorf("missing text encoder: err = %v", err)
	}
}

// TestLegacyTextEncoderNames loads an SD 1.x file whose text encoder was
// saved by an old transformers version, without the "text_model." level.
func TestLegacyTextEncoderNames(t *testing.T) {
	ref := open(t, generate(t, checkpoint.SingleFile, 8))
	p := generate(t, checkpoint.SingleFile, 8)
	rewrite(t, p, func(ts []safetensors.TensorData) []safetensors.TensorData {
		for i := range ts {
			ts[i].Name = strings.Replace(ts[i].Name, "cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.", 1)
		}
		return ts
	})
	m := open(t, p)
	if !reflect.DeepEqual(m.TextEncoder, ref.TextEncoder) {
		t.Errorf("text encoder %+v, want %+v", m.TextEncoder, ref.TextEncoder)
	}
	name := "text_model.encoder.layers.5.self_attn.v_proj.weight"
	a, _ := ref.Tensor(checkpoint.TextEncoder, name)
	b, err := m.Tensor(checkpoint.TextEncoder, name)
	if err != nil || b.Source != "cond_stage_model.transformer.encoder.layers.5.self_attn.v_proj.weight" || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("%s: %+v, %v", name, b, err)
	}
	if len(m.Ignored) != len(ref.Ignored) {
		t.Errorf("ignored %v, want %v", m.Ignored, ref.Ignored)
	}
}
