package checkpoint_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
)

func tinyUNet(linear bool, ctx int) checkpoint.UNetConfig {
	return checkpoint.UNetConfig{
		InChannels: 4, OutChannels: 4, BlockOutChannels: []int{32, 32, 64, 64}, LayersPerBlock: 2,
		Attention: []bool{true, true, true, false}, TransformerDepth: []int{1, 1, 1, 0}, MidDepth: 1,
		CrossAttentionDim: ctx, LinearProjection: linear, NormGroups: 32, TimeEmbedDim: 128,
	}
}

func tinyVAE() checkpoint.VAEConfig {
	return checkpoint.VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, BlockOutChannels: []int{32, 64}, LayersPerBlock: 1}
}

func storedTensor(t *testing.T, path, name string) safetensors.Tensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tn, err := f.MustHave(name)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestSD2SingleFile(t *testing.T) {
	// The file holds three resblocks; SD 2.x uses the first two (it
	// conditions on the penultimate layer) and ignores the last.
	a := checkpoint.Architecture{
		Family: checkpoint.SD2, UNet: tinyUNet(true, 32), VAE: tinyVAE(),
		TextEncoder: checkpoint.TextEncoderConfig{VocabSize: 600, HiddenSize: 32, IntermediateSize: 64, Layers: 3, MaxPositions: 77},
	}
	p := writeArchitecture(t, checkpoint.SingleFile, a, map[string][]int64{
		"cond_stage_model.model.text_projection": {32, 32},
		"cond_stage_model.model.logit_scale":     {},
	})
	m := open(t, p)
	if m.Family != checkpoint.SD2 || !m.UNet.LinearProjection || m.UNet.CrossAttentionDim != 32 {
		t.Errorf("family %s, linear %v, context %d", m.Family, m.UNet.LinearProjection, m.UNet.CrossAttentionDim)
	}
	te := m.TextEncoder
	if te.Layers != 2 || te.HiddenAct != "gelu" || te.Heads != 2 || te.VocabSize != 600 || te.IntermediateSize != 64 {
		t.Errorf("text encoder %+v", te)
	}
	if _, err := m.Tensor(checkpoint.TextEncoder, "text_model.encoder.layers.2.mlp.fc1.weight"); err == nil {
		t.Error("the unused last layer was mapped")
	}
	fused := storedTensor(t, p, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight")
	fusedBias := storedTensor(t, p, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias")
	for i, n := range []string{"q_proj", "k_proj", "v_proj"} {
		w, err := m.Tensor(checkpoint.TextEncoder, "text_model.encoder.layers.1.self_attn."+n+".weight")
		if err != nil {
			t.Fatal(err)
		}
		part := len(fused.Data) / 3
		if !bytes.Equal(w.Bytes(), fused.Data[i*part:(i+1)*part]) || w.Shape[0] != 32 || w.Shape[1] != 32 {
			t.Errorf("%s is not third %d of in_proj_weight", n, i+1)
		}
		b, _ := m.Tensor(checkpoint.TextEncoder, "text_model.encoder.layers.1.self_attn."+n+".bias")
		bp := len(fusedBias.Data) / 3
		if !bytes.Equal(b.Bytes(), fusedBias.Data[i*bp:(i+1)*bp]) {
			t.Errorf("%s bias is not third %d of in_proj_bias", n, i+1)
		}
	}
	if len(m.Ignored) != 2+12 {
		t.Errorf("ignored %v, want text_projection, logit_scale and the 12 tensors of the last resblock", m.Ignored)
	}
}

func tinySDXL() checkpoint.Architecture {
	u := checkpoint.UNetConfig{
		InChannels: 4, OutChannels: 4, BlockOutChannels: []int{32, 64, 64}, LayersPerBlock: 2,
		Attention: []bool{false, true, true}, TransformerDepth: []int{0, 1, 2}, MidDepth: 2,
		CrossAttentionDim: 80, LinearProjection: true, NormGroups: 32, TimeEmbedDim: 128, AdditionEmbedDim: 88,
	}
	return checkpoint.Architecture{
		Family: checkpoint.SDXL, UNet: u, VAE: tinyVAE(),
		TextEncoder:  checkpoint.TextEncoderConfig{VocabSize: 600, HiddenSize: 32, IntermediateSize: 64, Layers: 2, MaxPositions: 77},
		TextEncoder2: &checkpoint.TextEncoderConfig{VocabSize: 600, HiddenSize: 48, IntermediateSize: 96, Layers: 3, MaxPositions: 77, ProjectionDim: 40},
	}
}

func TestSDXLSingleFile(t *testing.T) {
	a := tinySDXL()
	p := writeArchitecture(t, checkpoint.SingleFile, a, map[string][]int64{"conditioner.embedders.1.model.logit_scale": {}})
	m := open(t, p)
	if m.Family != checkpoint.SDXL || m.TextEncoder2 == nil {
		t.Fatalf("family %s, second encoder %v", m.Family, m.TextEncoder2)
	}
	u := m.UNet
	if u.AdditionEmbedDim != 88 || u.MidDepth != 2 || u.TransformerDepth[2] != 2 || u.Attention[0] || u.CrossAttentionDim != 80 {
		t.Errorf("UNet %+v", u)
	}
	if te2 := m.TextEncoder2; te2.ProjectionDim != 40 || te2.Layers != 3 || te2.HiddenSize != 48 || te2.HiddenAct != "gelu" {
		t.Errorf("second text encoder %+v", te2)
	}
	if m.TextEncoder.HiddenAct != "quick_gelu" || m.TextEncoder.HiddenSize != 32 {
		t.Errorf("first text encoder %+v", m.TextEncoder)
	}
	stored := storedTensor(t, p, "conditioner.embedders.1.model.text_projection") // [48, 40]
	proj, err := m.Tensor(checkpoint.TextEncoder2, "text_projection.weight")
	if err != nil {
		t.Fatal(err)
	}
	if proj.Shape[0] != 40 || proj.Shape[1] != 48 {
		t.Fatalf("text_projection shape %v, want [40 48]", proj.Shape)
	}
	sv, _ := stored.Float32()
	pv, _ := proj.Float32()
	for r := range 48 {
		for c := range 40 {
			if pv[c*48+r] != sv[r*40+c] {
				t.Fatalf("text_projection[%d][%d] = %v, want stored[%d][%d] = %v", c, r, pv[c*48+r], r, c, sv[r*40+c])
			}
		}
	}
	dir, err := m.TokenizerDir(checkpoint.TextEncoder2)
	if err == nil || filepath.Base(filepath.Dir(p)) == "" {
		t.Errorf("tokenizer_2 folder %q should be reported missing", dir)
	}
}

func TestSDXLAndSD2Diffusers(t *testing.T) {
	dir := writeArchitecture(t, checkpoint.Diffusers, tinySDXL(), nil)
	m := open(t, dir)
	if m.Family != checkpoint.SDXL || m.TextEncoder2 == nil || m.TextEncoder2.ProjectionDim != 40 || m.VAE.ScalingFactor != 0.13025 {
		t.Errorf("SDXL folder: family %s, encoder 2 %+v, VAE %+v", m.Family, m.TextEncoder2, m.VAE)
	}

	sd2 := checkpoint.Architecture{
		Family: checkpoint.SD2, UNet: tinyUNet(true, 32), VAE: tinyVAE(),
		TextEncoder: checkpoint.TextEncoderConfig{VocabSize: 600, HiddenSize: 32, IntermediateSize: 64, Layers: 2, MaxPositions: 77},
	}
	dir = writeArchitecture(t, checkpoint.Diffusers, sd2, nil)
	if err := os.WriteFile(filepath.Join(dir, "text_encoder", "config.json"), []byte(`{"hidden_act": "gelu", "num_attention_heads": 4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "unet", "config.json"), []byte(`{"attention_head_dim": [1, 2, 3, 4], "use_linear_projection": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m = open(t, dir)
	if m.Family != checkpoint.SD2 || m.TextEncoder.Heads != 4 || m.TextEncoder.HiddenAct != "gelu" || len(m.UNet.Heads) != 4 || m.UNet.Heads[3] != 4 {
		t.Errorf("SD 2.x folder: family %s, text encoder %+v, UNet heads %v", m.Family, m.TextEncoder, m.UNet.Heads)
	}
}
