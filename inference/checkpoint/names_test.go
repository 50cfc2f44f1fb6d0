package checkpoint_test

import (
	"fmt"
	"testing"

	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

// sd15Names pairs tensor names of the released SD 1.5 single file with
// their names in the released diffusers folder, chosen to cover every
// numbering and renaming rule. Shapes are the stored ones.
var sd15Names = []struct {
	component checkpoint.Component
	ldm       string
	ldmShape  []int64
	diffusers string
	shape     []int64
}{
	{checkpoint.UNet, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", []int64{320, 320}, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", []int64{320, 320}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.0.0.weight", []int64{320, 4, 3, 3}, "conv_in.weight", []int64{320, 4, 3, 3}},
	{checkpoint.UNet, "model.diffusion_model.time_embed.0.weight", []int64{1280, 320}, "time_embedding.linear_1.weight", []int64{1280, 320}},
	{checkpoint.UNet, "model.diffusion_model.time_embed.2.bias", []int64{1280}, "time_embedding.linear_2.bias", []int64{1280}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.1.1.proj_in.weight", []int64{320, 320, 1, 1}, "down_blocks.0.attentions.0.proj_in.weight", []int64{320, 320, 1, 1}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.2.0.emb_layers.1.weight", []int64{320, 1280}, "down_blocks.0.resnets.1.time_emb_proj.weight", []int64{320, 1280}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.3.0.op.weight", []int64{320, 320, 3, 3}, "down_blocks.0.downsamplers.0.conv.weight", []int64{320, 320, 3, 3}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.4.0.skip_connection.weight", []int64{640, 320, 1, 1}, "down_blocks.1.resnets.0.conv_shortcut.weight", []int64{640, 320, 1, 1}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.7.1.transformer_blocks.0.ff.net.0.proj.weight", []int64{10240, 1280}, "down_blocks.2.attentions.0.transformer_blocks.0.ff.net.0.proj.weight", []int64{10240, 1280}},
	{checkpoint.UNet, "model.diffusion_model.input_blocks.11.0.out_layers.3.weight", []int64{1280, 1280, 3, 3}, "down_blocks.3.resnets.1.conv2.weight", []int64{1280, 1280, 3, 3}},
	{checkpoint.UNet, "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight", []int64{1280, 768}, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", []int64{1280, 768}},
	{checkpoint.UNet, "model.diffusion_model.middle_block.2.in_layers.0.weight", []int64{1280}, "mid_block.resnets.1.norm1.weight", []int64{1280}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.0.0.in_layers.0.weight", []int64{2560}, "up_blocks.0.resnets.0.norm1.weight", []int64{2560}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.2.1.conv.weight", []int64{1280, 1280, 3, 3}, "up_blocks.0.upsamplers.0.conv.weight", []int64{1280, 1280, 3, 3}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.3.1.norm.weight", []int64{1280}, "up_blocks.1.attentions.0.norm.weight", []int64{1280}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.5.2.conv.weight", []int64{1280, 1280, 3, 3}, "up_blocks.1.upsamplers.0.conv.weight", []int64{1280, 1280, 3, 3}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.8.2.conv.bias", []int64{640}, "up_blocks.2.upsamplers.0.conv.bias", []int64{640}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.9.0.skip_connection.weight", []int64{320, 960, 1, 1}, "up_blocks.3.resnets.0.conv_shortcut.weight", []int64{320, 960, 1, 1}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_v.weight", []int64{320, 768}, "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v.weight", []int64{320, 768}},
	{checkpoint.UNet, "model.diffusion_model.output_blocks.11.1.proj_out.weight", []int64{320, 320, 1, 1}, "up_blocks.3.attentions.2.proj_out.weight", []int64{320, 320, 1, 1}},
	{checkpoint.UNet, "model.diffusion_model.out.0.weight", []int64{320}, "conv_norm_out.weight", []int64{320}},
	{checkpoint.UNet, "model.diffusion_model.out.2.weight", []int64{4, 320, 3, 3}, "conv_out.weight", []int64{4, 320, 3, 3}},
	{checkpoint.VAE, "first_stage_model.encoder.conv_in.weight", []int64{128, 3, 3, 3}, "encoder.conv_in.weight", []int64{128, 3, 3, 3}},
	{checkpoint.VAE, "first_stage_model.encoder.down.0.downsample.conv.weight", []int64{128, 128, 3, 3}, "encoder.down_blocks.0.downsamplers.0.conv.weight", []int64{128, 128, 3, 3}},
	{checkpoint.VAE, "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight", []int64{256, 128, 1, 1}, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", []int64{256, 128, 1, 1}},
	{checkpoint.VAE, "first_stage_model.encoder.mid.attn_1.norm.weight", []int64{512}, "encoder.mid_block.attentions.0.group_norm.weight", []int64{512}},
	{checkpoint.VAE, "first_stage_model.encoder.mid.attn_1.proj_out.weight", []int64{512, 512, 1, 1}, "encoder.mid_block.attentions.0.to_out.0.weight", []int64{512, 512}},
	{checkpoint.VAE, "first_stage_model.encoder.norm_out.bias", []int64{512}, "encoder.conv_norm_out.bias", []int64{512}},
	{checkpoint.VAE, "first_stage_model.encoder.conv_out.weight", []int64{8, 512, 3, 3}, "encoder.conv_out.weight", []int64{8, 512, 3, 3}},
	{checkpoint.VAE, "first_stage_model.quant_conv.weight", []int64{8, 8, 1, 1}, "quant_conv.weight", []int64{8, 8, 1, 1}},
	{checkpoint.VAE, "first_stage_model.post_quant_conv.weight", []int64{4, 4, 1, 1}, "post_quant_conv.weight", []int64{4, 4, 1, 1}},
	{checkpoint.VAE, "first_stage_model.decoder.conv_in.weight", []int64{512, 4, 3, 3}, "decoder.conv_in.weight", []int64{512, 4, 3, 3}},
	{checkpoint.VAE, "first_stage_model.decoder.mid.attn_1.q.weight", []int64{512, 512, 1, 1}, "decoder.mid_block.attentions.0.to_q.weight", []int64{512, 512}},
	{checkpoint.VAE, "first_stage_model.decoder.mid.block_2.conv2.weight", []int64{512, 512, 3, 3}, "decoder.mid_block.resnets.1.conv2.weight", []int64{512, 512, 3, 3}},
	{checkpoint.VAE, "first_stage_model.decoder.up.3.block.0.conv1.weight", []int64{512, 512, 3, 3}, "decoder.up_blocks.0.resnets.0.conv1.weight", []int64{512, 512, 3, 3}},
	{checkpoint.VAE, "first_stage_model.decoder.up.3.upsample.conv.weight", []int64{512, 512, 3, 3}, "decoder.up_blocks.0.upsamplers.0.conv.weight", []int64{512, 512, 3, 3}},
	{checkpoint.VAE, "first_stage_model.decoder.up.1.block.0.nin_shortcut.weight", []int64{256, 512, 1, 1}, "decoder.up_blocks.2.resnets.0.conv_shortcut.weight", []int64{256, 512, 1, 1}},
	{checkpoint.VAE, "first_stage_model.decoder.up.0.block.2.conv2.weight", []int64{128, 128, 3, 3}, "decoder.up_blocks.3.resnets.2.conv2.weight", []int64{128, 128, 3, 3}},
	{checkpoint.VAE, "first_stage_model.decoder.norm_out.weight", []int64{128}, "decoder.conv_norm_out.weight", []int64{128}},
	{checkpoint.TextEncoder, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", []int64{49408, 768}, "text_model.embeddings.token_embedding.weight", []int64{49408, 768}},
	{checkpoint.TextEncoder, "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", []int64{77, 768}, "text_model.embeddings.position_embedding.weight", []int64{77, 768}},
	{checkpoint.TextEncoder, "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", []int64{768, 768}, "text_model.encoder.layers.0.self_attn.q_proj.weight", []int64{768, 768}},
	{checkpoint.TextEncoder, "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight", []int64{3072, 768}, "text_model.encoder.layers.11.mlp.fc1.weight", []int64{3072, 768}},
	{checkpoint.TextEncoder, "cond_stage_model.transformer.text_model.final_layer_norm.bias", []int64{768}, "text_model.final_layer_norm.bias", []int64{768}},
}

type storedKey struct {
	c    checkpoint.Component
	name string
}

func storedIndex(t *testing.T, layout checkpoint.Layout, a checkpoint.Architecture) map[storedKey]checkpoint.StoredTensor {
	t.Helper()
	ts, err := checkpoint.ExpectedTensors(layout, a)
	if err != nil {
		t.Fatal(err)
	}
	idx := map[storedKey]checkpoint.StoredTensor{}
	for _, s := range ts {
		k := storedKey{s.Component, s.Name}
		if _, dup := idx[k]; dup {
			t.Fatalf("%s lists %s twice", layout, s.Name)
		}
		idx[k] = s
	}
	return idx
}

func TestSD15TensorNames(t *testing.T) {
	a, err := testmodel.Architecture(testmodel.Full)
	if err != nil {
		t.Fatal(err)
	}
	ldm := storedIndex(t, checkpoint.SingleFile, a)
	diff := storedIndex(t, checkpoint.Diffusers, a)
	for _, n := range sd15Names {
		s, ok := ldm[storedKey{n.component, n.ldm}]
		switch {
		case !ok:
			t.Errorf("single-file name %s not expected", n.ldm)
		case s.Canonical != n.diffusers:
			t.Errorf("single-file %s maps to %s, want %s", n.ldm, s.Canonical, n.diffusers)
		case fmt.Sprint(s.Shape) != fmt.Sprint(n.ldmShape):
			t.Errorf("single-file %s has shape %v, want %v", n.ldm, s.Shape, n.ldmShape)
		}
		d, ok := diff[storedKey{n.component, n.diffusers}]
		if !ok {
			t.Errorf("diffusers name %s not expected", n.diffusers)
		} else if fmt.Sprint(d.Shape) != fmt.Sprint(n.shape) {
			t.Errorf("diffusers %s has shape %v, want %v", n.diffusers, d.Shape, n.shape)
		}
	}
	// The released SD 1.5 weights: 686 UNet, 248 VAE and 196 text encoder
	// tensors, holding 859,520,964 + 83,653,863 + 123,060,480 parameters.
	want := map[checkpoint.Component][2]int64{
		checkpoint.UNet: {686, 859520964}, checkpoint.VAE: {248, 83653863}, checkpoint.TextEncoder: {196, 123060480},
	}
	for _, layout := range []checkpoint.Layout{checkpoint.SingleFile, checkpoint.Diffusers} {
		got := map[checkpoint.Component][2]int64{}
		ts, _ := checkpoint.ExpectedTensors(layout, a)
		for _, s := range ts {
			n := int64(1)
			for _, d := range s.Shape {
				n *= d
			}
			g := got[s.Component]
			got[s.Component] = [2]int64{g[0] + 1, g[1] + n}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: tensors and parameters per component = %v, want %v", layout, got, want)
		}
	}
}

// sdxl is SDXL 1.0 base's architecture.
func sdxl() checkpoint.Architecture {
	return checkpoint.Architecture{
		Family: checkpoint.SDXL,
		UNet: checkpoint.UNetConfig{
			InChannels: 4, OutChannels: 4, BlockOutChannels: []int{320, 640, 1280}, LayersPerBlock: 2,
			Attention: []bool{false, true, true}, TransformerDepth: []int{0, 2, 10}, MidDepth: 10,
			CrossAttentionDim: 2048, LinearProjection: true, NormGroups: 32, TimeEmbedDim: 1280, AdditionEmbedDim: 2816,
		},
		VAE:          checkpoint.VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2},
		TextEncoder:  checkpoint.TextEncoderConfig{VocabSize: 49408, HiddenSize: 768, IntermediateSize: 3072, Layers: 12, MaxPositions: 77},
		TextEncoder2: &checkpoint.TextEncoderConfig{VocabSize: 49408, HiddenSize: 1280, IntermediateSize: 5120, Layers: 32, MaxPositions: 77, ProjectionDim: 1280},
	}
}

func TestSDXLTensorNames(t *testing.T) {
	a := sdxl()
	ldm := storedIndex(t, checkpoint.SingleFile, a)
	for _, n := range []struct {
		c         checkpoint.Component
		ldm       string
		shape     []int64
		canonical string
	}{
		{checkpoint.UNet, "model.diffusion_model.label_emb.0.0.weight", []int64{1280, 2816}, "add_embedding.linear_1.weight"},
		{checkpoint.UNet, "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight", []int64{640, 2048}, "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight"},
		{checkpoint.UNet, "model.diffusion_model.input_blocks.4.1.proj_in.weight", []int64{640, 640}, "down_blocks.1.attentions.0.proj_in.weight"},
		{checkpoint.UNet, "model.diffusion_model.middle_block.1.transformer_blocks.9.norm3.weight", []int64{1280}, "mid_block.attentions.0.transformer_blocks.9.norm3.weight"},
		{checkpoint.UNet, "model.diffusion_model.output_blocks.2.2.conv.weight", []int64{1280, 1280, 3, 3}, "up_blocks.0.upsamplers.0.conv.weight"},
		{checkpoint.UNet, "model.diffusion_model.output_blocks.8.0.skip_connection.weight", []int64{320, 640, 1, 1}, "up_blocks.2.resnets.2.conv_shortcut.weight"},
		{checkpoint.TextEncoder, "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", []int64{768, 768}, "text_model.encoder.layers.0.self_attn.q_proj.weight"},
		{checkpoint.TextEncoder2, "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight", []int64{3840, 1280}, "text_model.encoder.layers.31.self_attn.q_proj.weight"},
		{checkpoint.TextEncoder2, "conditioner.embedders.1.model.positional_embedding", []int64{77, 1280}, "text_model.embeddings.position_embedding.weight"},
		{checkpoint.TextEncoder2, "conditioner.embedders.1.model.ln_final.weight", []int64{1280}, "text_model.final_layer_norm.weight"},
		{checkpoint.TextEncoder2, "conditioner.embedders.1.model.text_projection", []int64{1280, 1280}, "text_projection.weight"},
	} {
		s, ok := ldm[storedKey{n.c, n.ldm}]
		if !ok || s.Canonical != n.canonical || fmt.Sprint(s.Shape) != fmt.Sprint(n.shape) {
			t.Errorf("%s: got %+v (found %v), want %s %v", n.ldm, s, ok, n.canonical, n.shape)
		}
	}
	// SDXL base's diffusers UNet has 1680 tensors, 2,567,463,684 parameters.
	diff := storedIndex(t, checkpoint.Diffusers, a)
	var count, params int64
	for k, s := range diff {
		if k.c != checkpoint.UNet {
			continue
		}
		n := int64(1)
		for _, d := range s.Shape {
			n *= d
		}
		count++
		params += n
	}
	if count != 1680 || params != 2567463684 {
		t.Errorf("SDXL UNet: %d tensors, %d parameters; want 1680, 2567463684", count, params)
	}
}
