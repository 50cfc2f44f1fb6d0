package testmodel

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// writeDiffusersConfigs writes model_index.json and the config files the
// diffusers and transformers libraries write for SD 1.5, with this model's
// dimensions.
func writeDiffusersConfigs(dir string, a checkpoint.Architecture, dt safetensors.DType) error {
	torchDType := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[dt]
	u, v, t := a.UNet, a.VAE, a.TextEncoder
	var down, up []string
	for i, attn := range u.Attention {
		if attn {
			down = append(down, "CrossAttnDownBlock2D")
		} else {
			down = append(down, "DownBlock2D")
		}
		if a.UNet.Attention[len(u.Attention)-1-i] {
			up = append(up, "CrossAttnUpBlock2D")
		} else {
			up = append(up, "UpBlock2D")
		}
	}
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	files := map[string]any{
		"model_index.json": map[string]any{
			"_class_name":             "StableDiffusionPipeline",
			"_diffusers_version":      "0.30.0",
			"feature_extractor":       []any{nil, nil},
			"requires_safety_checker": false,
			"safety_checker":          []any{nil, nil},
			"scheduler":               []string{"diffusers", "PNDMScheduler"},
			"text_encoder":            []string{"transformers", "CLIPTextModel"},
			"tokenizer":               []string{"transformers", "CLIPTokenizer"},
			"unet":                    []string{"diffusers", "UNet2DConditionModel"},
			"vae":                     []string{"diffusers", "AutoencoderKL"},
		},
		"scheduler/scheduler_config.json": map[string]any{
			"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
			"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": false,
			"skip_prk_steps": true, "steps_offset": 1, "clip_sample": false, "prediction_type": "epsilon",
			"timestep_spacing": "leading",
		},
		"unet/config.json": map[string]any{
			"_class_name": "UNet2DConditionModel", "act_fn": "silu",
			"attention_head_dim": u.Heads[0], "block_out_channels": u.BlockOutChannels,
			"center_input_sample": false, "cross_attention_dim": u.CrossAttentionDim,
			"down_block_types": down, "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0,
			"in_channels": u.InChannels, "layers_per_block": u.LayersPerBlock, "mid_block_scale_factor": 1,
			"norm_eps": 1e-05, "norm_num_groups": u.NormGroups, "out_channels": u.OutChannels,
			"sample_size": u.SampleSize, "up_block_types": up, "use_linear_projection": u.LinearProjection,
		},
		"vae/config.json": map[string]any{
			"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": v.BlockOutChannels,
			"down_block_types": repeat("DownEncoderBlock2D", len(v.BlockOutChannels)),
			"in_channels":      v.InChannels, "latent_channels": v.LatentChannels, "layers_per_block": v.LayersPerBlock,
			"norm_num_groups": v.NormGroups, "out_channels": v.OutChannels, "sample_size": v.SampleSize,
			"scaling_factor": v.ScalingFactor, "up_block_types": repeat("UpDecoderBlock2D", len(v.BlockOutChannels)),
		},
		"text_encoder/config.json": map[string]any{
			"architectures": []string{"CLIPTextModel"}, "attention_dropout": 0.0, "bos_token_id": 0,
			"eos_token_id": 2, "hidden_act": t.HiddenAct, "hidden_size": t.HiddenSize,
			"initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": t.IntermediateSize,
			"layer_norm_eps": 1e-05, "max_position_embeddings": t.MaxPositions, "model_type": "clip_text_model",
			"num_attention_heads": t.Heads, "num_hidden_layers": t.Layers, "pad_token_id": 1,
			"projection_dim": 768, "torch_dtype": torchDType, "vocab_size": t.VocabSize,
		},
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, mustJSON(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return WriteTokenizer(filepath.Join(dir, "tokenizer"))
}
