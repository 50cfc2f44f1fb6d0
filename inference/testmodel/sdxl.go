package testmodel

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Sizes of the published SDXL base 1.0 networks.
const (
	// fullXLPooledDim is OpenCLIP bigG's text_projection width, the pooled
	// embedding the UNet's text_time embedding reads.
	fullXLPooledDim = 1280
	// xlTimeIDWidth is addition_time_embed_dim: the sinusoidal features of
	// each of the six micro-conditioning values.
	xlTimeIDWidth = 256
)

// sdxlArchitecture returns the SDXL base 1.0 configs (Full) or a reduced
// model with every structural feature of it (Tiny): two text encoders of
// different widths (the second with a projection), a first UNet level
// without attention, a level and a middle block with more than one
// transformer block, 64-wide heads where the width allows, linear
// projections and the text_time embedding.
func sdxlArchitecture(size Size) (checkpoint.Architecture, error) {
	switch size {
	case Tiny:
		te2 := checkpoint.TextEncoderConfig{
			VocabSize: SyntheticVocabSize(), HiddenSize: 48, IntermediateSize: 192,
			Layers: 4, Heads: 3, MaxPositions: 77, HiddenAct: "gelu", ProjectionDim: 48,
		}
		return checkpoint.Architecture{
			Family: checkpoint.SDXL,
			UNet:   sdxlUNet([]int{32, 64, 128}, []int{0, 1, 2}, 2, 32+48, 48),
			VAE:    sdxlVAE(vae([]int{32, 32, 64, 64})),
			TextEncoder: checkpoint.TextEncoderConfig{
				VocabSize: SyntheticVocabSize(), HiddenSize: 32, IntermediateSize: 128,
				Layers: 3, Heads: 2, MaxPositions: 77, HiddenAct: "quick_gelu",
			},
			TextEncoder2: &te2,
		}, nil
	case Full:
		te2 := checkpoint.TextEncoderConfig{
			VocabSize: fullVocabSize, HiddenSize: 1280, IntermediateSize: 5120,
			Layers: 32, Heads: 20, MaxPositions: 77, HiddenAct: "gelu", ProjectionDim: fullXLPooledDim,
		}
		return checkpoint.Architecture{
			Family: checkpoint.SDXL,
			UNet:   sdxlUNet([]int{320, 640, 1280}, []int{0, 2, 10}, 10, 768+1280, fullXLPooledDim),
			VAE:    sdxlVAE(vae([]int{128, 256, 512, 512})),
			TextEncoder: checkpoint.TextEncoderConfig{
				VocabSize: fullVocabSize, HiddenSize: 768, IntermediateSize: 3072,
				Layers: 12, Heads: 12, MaxPositions: 77, HiddenAct: "quick_gelu",
			},
			TextEncoder2: &te2,
		}, nil
	}
	return checkpoint.Architecture{}, fmt.Errorf("unknown test model size %q (want tiny or full)", size)
}

// sdxlUNet is the SDXL UNet topology: two resnets per level, no attention
// at the first level, the given transformer depths, heads 64 wide (8 heads
// where a test width is not a multiple of 64, as checkpoint.Open assumes),
// linear projections and the text_time embedding of the pooled text
// embedding and six size values.
func sdxlUNet(chs, depth []int, mid, ctx, pooled int) checkpoint.UNetConfig {
	heads := make([]int, len(chs))
	attn := make([]bool, len(chs))
	for i, ch := range chs {
		heads[i] = 8
		if ch%64 == 0 {
			heads[i] = ch / 64
		}
		attn[i] = depth[i] > 0
	}
	return checkpoint.UNetConfig{
		InChannels: 4, OutChannels: 4,
		BlockOutChannels: chs, LayersPerBlock: 2,
		Attention: attn, TransformerDepth: depth, MidDepth: mid,
		Heads: heads, CrossAttentionDim: ctx, LinearProjection: true,
		NormGroups: 32, TimeEmbedDim: 4 * chs[0],
		AdditionEmbedDim: pooled + 6*xlTimeIDWidth, SampleSize: 128,
	}
}

func sdxlVAE(v checkpoint.VAEConfig) checkpoint.VAEConfig {
	v.ScalingFactor, v.SampleSize = 0.13025, 1024
	return v
}

// sdxlExtras are the buffers the released SDXL single file carries besides
// weights: the noise schedule, CLIP-L's position_ids and OpenCLIP's
// logit_scale.
func sdxlExtras() []extra {
	out := scheduleExtras()
	ids := make([]byte, 8*77)
	for i := range 77 {
		binary.LittleEndian.PutUint64(ids[8*i:], uint64(i))
	}
	out = append(out, extra{safetensors.Spec{Name: "conditioner.embedders.0.transformer.text_model.embeddings.position_ids", DType: safetensors.I64, Shape: []int64{1, 77}}, ids})
	scale, _ := safetensors.Float32Bytes(safetensors.F32, []float32{4.6052})
	out = append(out, extra{safetensors.Spec{Name: "conditioner.embedders.1.model.logit_scale", DType: safetensors.F32, Shape: []int64{}}, scale})
	return out
}

// writeSDXLDiffusersConfigs writes the model_index.json and config files of
// a diffusers StableDiffusionXLPipeline folder, and both tokenizers.
func writeSDXLDiffusersConfigs(dir string, a checkpoint.Architecture, dt safetensors.DType) error {
	torchDType := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[dt]
	u, v, t, t2 := a.UNet, a.VAE, a.TextEncoder, *a.TextEncoder2
	var down, up []string
	layers := make([]int, len(u.BlockOutChannels))
	for i, attn := range u.Attention {
		if attn {
			down = append(down, "CrossAttnDownBlock2D")
		} else {
			down = append(down, "DownBlock2D")
		}
		if u.Attention[len(u.Attention)-1-i] {
			up = append(up, "CrossAttnUpBlock2D")
		} else {
			up = append(up, "UpBlock2D")
		}
		// diffusers lists one depth per level, 1 where there is no
		// attention; the middle block uses the last.
		layers[i] = max(u.TransformerDepth[i], 1)
	}
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	textConfig := func(c checkpoint.TextEncoderConfig, class string) map[string]any {
		m := map[string]any{
			"architectures": []string{class}, "attention_dropout": 0.0, "bos_token_id": 0,
			"eos_token_id": 2, "hidden_act": c.HiddenAct, "hidden_size": c.HiddenSize,
			"initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": c.IntermediateSize,
			"layer_norm_eps": 1e-05, "max_position_embeddings": c.MaxPositions, "model_type": "clip_text_model",
			"num_attention_heads": c.Heads, "num_hidden_layers": c.Layers, "pad_token_id": 1,
			"projection_dim": max(c.ProjectionDim, 768), "torch_dtype": torchDType, "vocab_size": c.VocabSize,
		}
		return m
	}
	pooled := t2.ProjectionDim
	files := map[string]any{
		"model_index.json": map[string]any{
			"_class_name":                  "StableDiffusionXLPipeline",
			"_diffusers_version":           "0.30.0",
			"force_zeros_for_empty_prompt": true,
			"scheduler":                    []string{"diffusers", "EulerDiscreteScheduler"},
			"text_encoder":                 []string{"transformers", "CLIPTextModel"},
			"text_encoder_2":               []string{"transformers", "CLIPTextModelWithProjection"},
			"tokenizer":                    []string{"transformers", "CLIPTokenizer"},
			"tokenizer_2":                  []string{"transformers", "CLIPTokenizer"},
			"unet":                         []string{"diffusers", "UNet2DConditionModel"},
			"vae":                          []string{"diffusers", "AutoencoderKL"},
		},
		"scheduler/scheduler_config.json": map[string]any{
			"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
			"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "interpolation_type": "linear",
			"steps_offset": 1, "clip_sample": false, "prediction_type": "epsilon", "sample_max_value": 1.0,
			"set_alpha_to_one": false, "skip_prk_steps": true, "timestep_spacing": "leading", "use_karras_sigmas": false,
		},
		"unet/config.json": map[string]any{
			"_class_name": "UNet2DConditionModel", "act_fn": "silu",
			"addition_embed_type": "text_time", "addition_time_embed_dim": xlTimeIDWidth,
			"projection_class_embeddings_input_dim": u.AdditionEmbedDim,
			"attention_head_dim":                    u.Heads, "block_out_channels": u.BlockOutChannels,
			"center_input_sample": false, "cross_attention_dim": u.CrossAttentionDim,
			"down_block_types": down, "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0,
			"in_channels": u.InChannels, "layers_per_block": u.LayersPerBlock, "mid_block_scale_factor": 1,
			"norm_eps": 1e-05, "norm_num_groups": u.NormGroups, "out_channels": u.OutChannels,
			"sample_size": u.SampleSize, "up_block_types": up, "use_linear_projection": u.LinearProjection,
			"transformer_layers_per_block": layers,
		},
		"vae/config.json": map[string]any{
			"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": v.BlockOutChannels,
			"down_block_types": repeat("DownEncoderBlock2D", len(v.BlockOutChannels)), "force_upcast": true,
			"in_channels": v.InChannels, "latent_channels": v.LatentChannels, "layers_per_block": v.LayersPerBlock,
			"norm_num_groups": v.NormGroups, "out_channels": v.OutChannels, "sample_size": v.SampleSize,
			"scaling_factor": v.ScalingFactor, "up_block_types": repeat("UpDecoderBlock2D", len(v.BlockOutChannels)),
		},
		"text_encoder/config.json":   textConfig(t, "CLIPTextModel"),
		"text_encoder_2/config.json": textConfig(t2, "CLIPTextModelWithProjection"),
	}
	files["text_encoder_2/config.json"].(map[string]any)["projection_dim"] = pooled
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, mustJSON(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return writeSDXLTokenizers(dir)
}

// SDXLPadToken is what the second SDXL tokenizer pads with (id 0 in CLIP's
// vocabulary), where the first pads with the end token.
const SDXLPadToken = "!"

// writeSDXLTokenizers writes tokenizer/ (padding with the end token) and
// tokenizer_2/ (padding with "!") into dir.
func writeSDXLTokenizers(dir string) error {
	if err := WriteTokenizer(filepath.Join(dir, "tokenizer")); err != nil {
		return err
	}
	return writeTokenizer(filepath.Join(dir, "tokenizer_2"), SDXLPadToken)
}
