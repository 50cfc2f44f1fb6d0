package checkpoint

import "fmt"

// transform says how a canonical tensor is obtained from its stored one.
type transform int

const (
	asIs transform = iota
	// squeezeConv: the canonical tensor is a linear weight [out, in]; the
	// stored one may be a 1x1 convolution [out, in, 1, 1] with the same bytes.
	squeezeConv
	// splitQ/K/V: the stored tensor is OpenCLIP's fused in_proj [3*d, ...];
	// the canonical one is the first, second or third third along dim 0.
	splitQ
	splitK
	splitV
	// transposed: the stored matrix is [in, out] (OpenCLIP text_projection),
	// the canonical one [out, in].
	transposed
)

func (t transform) String() string {
	switch t {
	case squeezeConv:
		return "1x1 conv as linear"
	case splitQ, splitK, splitV:
		return fmt.Sprintf("part %d of 3 of a fused in_proj", int(t-splitQ)+1)
	case transposed:
		return "transposed"
	}
	return "as stored"
}

// entry is one expected tensor: its canonical (diffusers) name inside its
// component, the name it has in the file being read, its canonical shape and
// how to get from one to the other.
type entry struct {
	Canonical string
	Source    string
	Shape     []int64
	T         transform
}

// sourceShape is the shape the stored tensor must have.
func (e entry) sourceShapes() [][]int64 {
	switch e.T {
	case squeezeConv:
		return [][]int64{e.Shape, append(append([]int64{}, e.Shape...), 1, 1)}
	case splitQ, splitK, splitV:
		s := append([]int64{}, e.Shape...)
		s[0] *= 3
		return [][]int64{s}
	case transposed:
		return [][]int64{{e.Shape[1], e.Shape[0]}}
	}
	return [][]int64{e.Shape}
}

// specBuilder collects entries. Source names are built from the builder's
// prefix; when ldm is false (diffusers layout) the source is the canonical
// name and the single-file names passed in are ignored.
type specBuilder struct {
	ldm     bool
	prefix  string
	entries []entry
}

func (b *specBuilder) add(canon, ldmName string, shape []int64, t transform) {
	src := canon
	if b.ldm {
		src = b.prefix + ldmName
	} else if t != squeezeConv {
		// Only the conv/linear ambiguity exists in diffusers folders.
		t = asIs
	}
	b.entries = append(b.entries, entry{Canonical: canon, Source: src, Shape: shape, T: t})
}

func d(xs ...int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

func (b *specBuilder) norm(c, l string, ch int) {
	b.add(c+".weight", l+".weight", d(ch), asIs)
	b.add(c+".bias", l+".bias", d(ch), asIs)
}

func (b *specBuilder) linear(c, l string, out, in int, bias bool) {
	b.add(c+".weight", l+".weight", d(out, in), asIs)
	if bias {
		b.add(c+".bias", l+".bias", d(out), asIs)
	}
}

func (b *specBuilder) conv(c, l string, out, in, k int) {
	b.add(c+".weight", l+".weight", d(out, in, k, k), asIs)
	b.add(c+".bias", l+".bias", d(out), asIs)
}

// unetSpec lists every UNet tensor. Single-file names follow the original
// LDM numbering: input_blocks counts conv_in, then each resnet(+attention)
// layer, then each downsampler; output_blocks counts every up-block layer,
// with the upsampler sharing the last layer's index.
func unetSpec(cfg UNetConfig, ldm bool) []entry {
	b := &specBuilder{ldm: ldm, prefix: "model.diffusion_model."}
	chs, L := cfg.BlockOutChannels, cfg.LayersPerBlock
	ch0, temb := chs[0], cfg.TimeEmbedDim
	b.linear("time_embedding.linear_1", "time_embed.0", temb, ch0, true)
	b.linear("time_embedding.linear_2", "time_embed.2", temb, temb, true)
	if cfg.AdditionEmbedDim > 0 {
		b.linear("add_embedding.linear_1", "label_emb.0.0", temb, cfg.AdditionEmbedDim, true)
		b.linear("add_embedding.linear_2", "label_emb.0.2", temb, temb, true)
	}
	b.conv("conv_in", "input_blocks.0.0", ch0, cfg.InChannels, 3)

	skips := []int{ch0}
	in := ch0
	idx := 1
	for i, ch := range chs {
		for j := range L {
			p := fmt.Sprintf("input_blocks.%d.", idx)
			b.unetResnet(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), p+"0", in, ch, temb)
			if cfg.Attention[i] {
				b.transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), p+"1", ch, cfg.TransformerDepth[i], cfg)
			}
			in = ch
			skips = append(skips, ch)
			idx++
		}
		if i < len(chs)-1 {
			b.conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("input_blocks.%d.0.op", idx), ch, ch, 3)
			skips = append(skips, ch)
			idx++
		}
	}

	last := chs[len(chs)-1]
	b.unetResnet("mid_block.resnets.0", "middle_block.0", last, last, temb)
	b.transformer("mid_block.attentions.0", "middle_block.1", last, cfg.MidDepth, cfg)
	b.unetResnet("mid_block.resnets.1", "middle_block.2", last, last, temb)

	idx = 0
	in = last
	for i := range chs {
		rev := len(chs) - 1 - i
		ch := chs[rev]
		for j := 0; j <= L; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			p := fmt.Sprintf("output_blocks.%d.", idx)
			b.unetResnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), p+"0", in+skip, ch, temb)
			sub := 1
			if cfg.Attention[rev] {
				b.transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), p+"1", ch, cfg.TransformerDepth[rev], cfg)
				sub = 2
			}
			if j == L && i < len(chs)-1 {
				b.conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("%s%d.conv", p, sub), ch, ch, 3)
			}
			in = ch
			idx++
		}
	}
	b.norm("conv_norm_out", "out.0", ch0)
	b.conv("conv_out", "out.2", cfg.OutChannels, ch0, 3)
	return b.entries
}

func (b *specBuilder) unetResnet(c, l string, in, out, temb int) {
	b.norm(c+".norm1", l+".in_layers.0", in)
	b.conv(c+".conv1", l+".in_layers.2", out, in, 3)
	b.linear(c+".time_emb_proj", l+".emb_layers.1", out, temb, true)
	b.norm(c+".norm2", l+".out_layers.0", out)
	b.conv(c+".conv2", l+".out_layers.3", out, out, 3)
	if in != out {
		b.conv(c+".conv_shortcut", l+".skip_connection", out, in, 1)
	}
}

// transformer is a Transformer2DModel / SpatialTransformer. Inside it the
// two layouts use the same names.
func (b *specBuilder) transformer(c, l string, ch, depth int, cfg UNetConfig) {
	b.norm(c+".norm", l+".norm", ch)
	proj := func(name string) {
		if cfg.LinearProjection {
			b.linear(c+"."+name, l+"."+name, ch, ch, true)
		} else {
			b.conv(c+"."+name, l+"."+name, ch, ch, 1)
		}
	}
	proj("proj_in")
	for k := range depth {
		tc := fmt.Sprintf("%s.transformer_blocks.%d.", c, k)
		tl := fmt.Sprintf("%s.transformer_blocks.%d.", l, k)
		for _, a := range []struct {
			name string
			kv   int
		}{{"attn1", ch}, {"attn2", cfg.CrossAttentionDim}} {
			b.linear(tc+a.name+".to_q", tl+a.name+".to_q", ch, ch, false)
			b.linear(tc+a.name+".to_k", tl+a.name+".to_k", ch, a.kv, false)
			b.linear(tc+a.name+".to_v", tl+a.name+".to_v", ch, a.kv, false)
			b.linear(tc+a.name+".to_out.0", tl+a.name+".to_out.0", ch, ch, true)
		}
		// GEGLU: the first projection yields value and gate halves.
		b.linear(tc+"ff.net.0.proj", tl+"ff.net.0.proj", 8*ch, ch, true)
		b.linear(tc+"ff.net.2", tl+"ff.net.2", ch, 4*ch, true)
		for _, n := range []string{"norm1", "norm2", "norm3"} {
			b.norm(tc+n, tl+n, ch)
		}
	}
	proj("proj_out")
}

// vaeSpec lists every autoencoder tensor. The single-file decoder numbers
// its up blocks from the lowest resolution's opposite end: diffusers'
// up_blocks.i is LDM's up.(n-1-i).
func vaeSpec(cfg VAEConfig, ldm bool) []entry {
	b := &specBuilder{ldm: ldm, prefix: "first_stage_model."}
	chs, L := cfg.BlockOutChannels, cfg.LayersPerBlock
	n := len(chs)
	last := chs[n-1]
	b.conv("encoder.conv_in", "encoder.conv_in", chs[0], cfg.InChannels, 3)
	in := chs[0]
	for i, ch := range chs {
		for j := range L {
			b.vaeResnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), fmt.Sprintf("encoder.down.%d.block.%d", i, j), in, ch)
			in = ch
		}
		if i < n-1 {
			b.conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("encoder.down.%d.downsample.conv", i), ch, ch, 3)
		}
	}
	b.vaeMid("encoder", last)
	b.norm("encoder.conv_norm_out", "encoder.norm_out", last)
	b.conv("encoder.conv_out", "encoder.conv_out", 2*cfg.LatentChannels, last, 3)
	b.conv("quant_conv", "quant_conv", 2*cfg.LatentChannels, 2*cfg.LatentChannels, 1)
	b.conv("post_quant_conv", "post_quant_conv", cfg.LatentChannels, cfg.LatentChannels, 1)

	b.conv("decoder.conv_in", "decoder.conv_in", last, cfg.LatentChannels, 3)
	b.vaeMid("decoder", last)
	in = last
	for i := range n {
		rev := n - 1 - i
		ch := chs[rev]
		for j := 0; j <= L; j++ {
			b.vaeResnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), fmt.Sprintf("decoder.up.%d.block.%d", rev, j), in, ch)
			in = ch
		}
		if i < n-1 {
			b.conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("decoder.up.%d.upsample.conv", rev), ch, ch, 3)
		}
	}
	b.norm("decoder.conv_norm_out", "decoder.norm_out", chs[0])
	b.conv("decoder.conv_out", "decoder.conv_out", cfg.OutChannels, chs[0], 3)
	return b.entries
}

func (b *specBuilder) vaeResnet(c, l string, in, out int) {
	b.norm(c+".norm1", l+".norm1", in)
	b.conv(c+".conv1", l+".conv1", out, in, 3)
	b.norm(c+".norm2", l+".norm2", out)
	b.conv(c+".conv2", l+".conv2", out, out, 3)
	if in != out {
		b.conv(c+".conv_shortcut", l+".nin_shortcut", out, in, 1)
	}
}

// vaeMid is the middle block; its attention is stored as 1x1 convolutions
// (q, k, v, proj_out) in single files and as linear layers in diffusers.
func (b *specBuilder) vaeMid(side string, ch int) {
	c, l := side+".mid_block", side+".mid"
	b.vaeResnet(c+".resnets.0", l+".block_1", ch, ch)
	b.norm(c+".attentions.0.group_norm", l+".attn_1.norm", ch)
	for _, p := range [][2]string{{"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}} {
		b.add(c+".attentions.0."+p[0]+".weight", l+".attn_1."+p[1]+".weight", d(ch, ch), squeezeConv)
		b.add(c+".attentions.0."+p[0]+".bias", l+".attn_1."+p[1]+".bias", d(ch), asIs)
	}
	b.vaeResnet(c+".resnets.1", l+".block_2", ch, ch)
}

// clipSpec lists a Hugging Face CLIPTextModel's tensors. prefix is where the
// model lives in a single file ("cond_stage_model.transformer." for SD 1.x);
// inside it the names are the diffusers ones.
func clipSpec(cfg TextEncoderConfig, ldm bool, prefix string) []entry {
	b := &specBuilder{ldm: ldm, prefix: prefix}
	D, I := cfg.HiddenSize, cfg.IntermediateSize
	same := func(name string, shape []int64) { b.add(name, name, shape, asIs) }
	same("text_model.embeddings.token_embedding.weight", d(cfg.VocabSize, D))
	same("text_model.embeddings.position_embedding.weight", d(cfg.MaxPositions, D))
	for k := range cfg.Layers {
		p := fmt.Sprintf("text_model.encoder.layers.%d.", k)
		for _, n := range []string{"k_proj", "v_proj", "q_proj", "out_proj"} {
			same(p+"self_attn."+n+".weight", d(D, D))
			same(p+"self_attn."+n+".bias", d(D))
		}
		same(p+"layer_norm1.weight", d(D))
		same(p+"layer_norm1.bias", d(D))
		same(p+"mlp.fc1.weight", d(I, D))
		same(p+"mlp.fc1.bias", d(I))
		same(p+"mlp.fc2.weight", d(D, I))
		same(p+"mlp.fc2.bias", d(D))
		same(p+"layer_norm2.weight", d(D))
		same(p+"layer_norm2.bias", d(D))
	}
	same("text_model.final_layer_norm.weight", d(D))
	same("text_model.final_layer_norm.bias", d(D))
	if cfg.ProjectionDim > 0 {
		same("text_projection.weight", d(cfg.ProjectionDim, D))
	}
	return b.entries
}

// openCLIPSpec maps an OpenCLIP text tower (SD 2.x's cond_stage_model.model.,
// SDXL's conditioner.embedders.1.model.) onto CLIPTextModel names: the fused
// attention in_proj is split into q/k/v and text_projection is transposed.
func openCLIPSpec(cfg TextEncoderConfig, prefix string) []entry {
	b := &specBuilder{ldm: true, prefix: prefix}
	D, I := cfg.HiddenSize, cfg.IntermediateSize
	b.add("text_model.embeddings.token_embedding.weight", "token_embedding.weight", d(cfg.VocabSize, D), asIs)
	b.add("text_model.embeddings.position_embedding.weight", "positional_embedding", d(cfg.MaxPositions, D), asIs)
	for k := range cfg.Layers {
		c := fmt.Sprintf("text_model.encoder.layers.%d.", k)
		l := fmt.Sprintf("transformer.resblocks.%d.", k)
		for part, n := range []string{"q_proj", "k_proj", "v_proj"} {
			b.add(c+"self_attn."+n+".weight", l+"attn.in_proj_weight", d(D, D), splitQ+transform(part))
			b.add(c+"self_attn."+n+".bias", l+"attn.in_proj_bias", d(D), splitQ+transform(part))
		}
		b.linear(c+"self_attn.out_proj", l+"attn.out_proj", D, D, true)
		b.norm(c+"layer_norm1", l+"ln_1", D)
		b.linear(c+"mlp.fc1", l+"mlp.c_fc", I, D, true)
		b.linear(c+"mlp.fc2", l+"mlp.c_proj", D, I, true)
		b.norm(c+"layer_norm2", l+"ln_2", D)
	}
	b.norm("text_model.final_layer_norm", "ln_final", D)
	if cfg.ProjectionDim > 0 {
		b.add("text_projection.weight", "text_projection", d(cfg.ProjectionDim, D), transposed)
	}
	return b.entries
}
