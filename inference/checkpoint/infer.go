package checkpoint

import (
	"fmt"
	"strings"
)

// shapeIndex answers "is there a tensor with this stored name, and what is
// its shape" while configs are inferred. Existence questions are asked by
// module prefix so that one missing tensor does not hide its module and
// turn into a cascade of spurious problems.
type shapeIndex struct {
	shapes   map[string][]int64
	prefixes map[string]bool // every dot-terminated prefix of every name
}

func newShapeIndex() shapeIndex {
	return shapeIndex{shapes: map[string][]int64{}, prefixes: map[string]bool{}}
}

func (s shapeIndex) add(name string, shape []int64) {
	s.shapes[name] = shape
	for i := range len(name) {
		if name[i] == '.' {
			s.prefixes[name[:i+1]] = true
		}
	}
}

func (s shapeIndex) has(name string) bool { _, ok := s.shapes[name]; return ok }

// hasModule reports whether any tensor lives under module (given without
// the trailing dot).
func (s shapeIndex) hasModule(module string) bool { return s.prefixes[module+"."] }

// firstDim returns dimension 0 of the first of names that exists.
func (s shapeIndex) firstDim(names ...string) (int, bool) {
	for _, n := range names {
		if sh, ok := s.shapes[n]; ok && len(sh) > 0 {
			return int(sh[0]), true
		}
	}
	return 0, false
}

// dim returns dimension i of the named tensor or an error saying which
// tensor the inference needed.
func (s shapeIndex) dim(what, name string, i int) (int, error) {
	sh, ok := s.shapes[name]
	if !ok {
		return 0, fmt.Errorf("cannot infer %s: tensor %q is missing", what, name)
	}
	if i >= len(sh) {
		return 0, fmt.Errorf("cannot infer %s: tensor %q has shape %v, want at least %d dimensions", what, name, sh, i+1)
	}
	return int(sh[i]), nil
}

func (s shapeIndex) hasPrefix(prefix string) bool {
	if strings.HasSuffix(prefix, ".") {
		return s.prefixes[prefix]
	}
	for k := range s.shapes {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// unetNamer gives the stored names the UNet inference probes. In single
// files, input block numbers depend on the layers per block, found first.
type unetNamer struct {
	ldm bool
	L   int
}

const ldmUNet = "model.diffusion_model."

func (n unetNamer) convIn() string {
	if n.ldm {
		return ldmUNet + "input_blocks.0.0.weight"
	}
	return "conv_in.weight"
}

func (n unetNamer) convOut() string {
	if n.ldm {
		return ldmUNet + "out.2.weight"
	}
	return "conv_out.weight"
}

func (n unetNamer) timeEmbed() string {
	if n.ldm {
		return ldmUNet + "time_embed.0.weight"
	}
	return "time_embedding.linear_1.weight"
}

func (n unetNamer) addEmbed() string {
	if n.ldm {
		return ldmUNet + "label_emb.0.0.weight"
	}
	return "add_embedding.linear_1.weight"
}

// resnet is the module of down block i's resnet j.
func (n unetNamer) resnet(i, j int) string {
	if n.ldm {
		return fmt.Sprintf("%sinput_blocks.%d.0", ldmUNet, 1+i*(n.L+1)+j)
	}
	return fmt.Sprintf("down_blocks.%d.resnets.%d", i, j)
}

// resnetWidth is a resnet's output width, read from whichever of its
// output-side tensors is present.
func (n unetNamer) resnetWidth(s shapeIndex, i, j int) (int, bool) {
	r := n.resnet(i, j)
	if n.ldm {
		return s.firstDim(r+".in_layers.2.weight", r+".in_layers.2.bias", r+".out_layers.0.weight", r+".out_layers.3.weight", r+".out_layers.3.bias")
	}
	return s.firstDim(r+".conv1.weight", r+".conv1.bias", r+".norm2.weight", r+".conv2.weight", r+".conv2.bias")
}

func (n unetNamer) attention(i int) string {
	if n.ldm {
		return fmt.Sprintf("%sinput_blocks.%d.1", ldmUNet, 1+i*(n.L+1))
	}
	return fmt.Sprintf("down_blocks.%d.attentions.0", i)
}

func (n unetNamer) midAttention() string {
	if n.ldm {
		return ldmUNet + "middle_block.1"
	}
	return "mid_block.attentions.0"
}

// inferUNet derives the architecture from tensor shapes. Head counts and
// the sample size are not visible in shapes; they get the family's values
// (see applyFamilyDefaults) unless a config.json provides them.
func inferUNet(s shapeIndex, ldm bool) (UNetConfig, error) {
	n := unetNamer{ldm: ldm}
	if ldm {
		// Input blocks after conv_in are resnets until the first
		// downsampler ("op").
		k := 1
		for m := fmt.Sprintf("%sinput_blocks.%d.0", ldmUNet, k); s.hasModule(m) && !s.hasModule(m+".op"); m = fmt.Sprintf("%sinput_blocks.%d.0", ldmUNet, k) {
			k++
		}
		n.L = k - 1
	} else {
		for s.hasModule(n.resnet(0, n.L)) {
			n.L++
		}
	}
	if n.L == 0 {
		return UNetConfig{}, fmt.Errorf("cannot infer UNet config: no resnet found under %q", n.resnet(0, 0))
	}
	var cfg UNetConfig
	var err error
	cfg.LayersPerBlock = n.L
	if cfg.InChannels, err = s.dim("UNet input channels", n.convIn(), 1); err != nil {
		return cfg, err
	}
	if cfg.OutChannels, err = s.dim("UNet output channels", n.convOut(), 0); err != nil {
		return cfg, err
	}
	if cfg.TimeEmbedDim, err = s.dim("UNet time embedding width", n.timeEmbed(), 0); err != nil {
		return cfg, err
	}
	if s.has(n.addEmbed()) {
		cfg.AdditionEmbedDim, _ = s.dim("", n.addEmbed(), 1)
	}
	for i := 0; s.hasModule(n.resnet(i, 0)); i++ {
		ch, ok := n.resnetWidth(s, i, 0)
		if !ok {
			if ch, ok = n.resnetWidth(s, i, 1); !ok {
				return cfg, fmt.Errorf("cannot infer UNet config: no tensor under %q tells its width", n.resnet(i, 0))
			}
		}
		cfg.BlockOutChannels = append(cfg.BlockOutChannels, ch)
		attn := n.attention(i)
		has := s.hasModule(attn)
		cfg.Attention = append(cfg.Attention, has)
		cfg.TransformerDepth = append(cfg.TransformerDepth, countBlocks(s, attn))
		if has && cfg.CrossAttentionDim == 0 {
			if cfg.CrossAttentionDim, err = s.dim("UNet cross-attention width", attn+".transformer_blocks.0.attn2.to_k.weight", 1); err != nil {
				return cfg, err
			}
			cfg.LinearProjection = len(s.shapes[attn+".proj_in.weight"]) == 2
		}
	}
	cfg.MidDepth = countBlocks(s, n.midAttention())
	if cfg.CrossAttentionDim == 0 {
		return cfg, fmt.Errorf("cannot infer UNet config: no cross-attention found at %q", n.attention(0)+".transformer_blocks.0.attn2.to_k.weight")
	}
	cfg.NormGroups = 32
	return cfg, nil
}

func countBlocks(s shapeIndex, attn string) int {
	k := 0
	for s.hasModule(fmt.Sprintf("%s.transformer_blocks.%d", attn, k)) {
		k++
	}
	return k
}

// inferVAE derives the autoencoder's architecture from shapes.
func inferVAE(s shapeIndex, ldm bool) (VAEConfig, error) {
	p := ""
	block := func(i, j int) string { return fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j) }
	if ldm {
		p = "first_stage_model."
		block = func(i, j int) string { return fmt.Sprintf("%sencoder.down.%d.block.%d", p, i, j) }
	}
	var cfg VAEConfig
	var err error
	for s.hasModule(block(0, cfg.LayersPerBlock)) {
		cfg.LayersPerBlock++
	}
	if cfg.LayersPerBlock == 0 {
		return cfg, fmt.Errorf("cannot infer VAE config: no resnet found under %q", block(0, 0))
	}
	for i := 0; s.hasModule(block(i, 0)); i++ {
		var ch int
		ok := false
		for j := 0; j < cfg.LayersPerBlock && !ok; j++ {
			b := block(i, j)
			ch, ok = s.firstDim(b+".conv1.weight", b+".conv1.bias", b+".norm2.weight", b+".conv2.weight", b+".conv2.bias")
		}
		if !ok {
			return cfg, fmt.Errorf("cannot infer VAE config: no tensor under %q tells its width", block(i, 0))
		}
		cfg.BlockOutChannels = append(cfg.BlockOutChannels, ch)
	}
	if cfg.InChannels, err = s.dim("VAE input channels", p+"encoder.conv_in.weight", 1); err != nil {
		return cfg, err
	}
	if cfg.LatentChannels, err = s.dim("VAE latent channels", p+"decoder.conv_in.weight", 1); err != nil {
		return cfg, err
	}
	if cfg.OutChannels, err = s.dim("VAE output channels", p+"decoder.conv_out.weight", 0); err != nil {
		return cfg, err
	}
	cfg.NormGroups = 32
	return cfg, nil
}

// inferCLIP derives a Hugging Face CLIPTextModel's architecture; prefix is
// where it lives in the file ("" in a diffusers folder).
func inferCLIP(s shapeIndex, prefix string) (TextEncoderConfig, error) {
	var cfg TextEncoderConfig
	var err error
	tok := prefix + "text_model.embeddings.token_embedding.weight"
	if cfg.VocabSize, err = s.dim("text encoder vocabulary", tok, 0); err != nil {
		return cfg, err
	}
	cfg.HiddenSize, _ = s.dim("", tok, 1)
	if cfg.MaxPositions, err = s.dim("text encoder positions", prefix+"text_model.embeddings.position_embedding.weight", 0); err != nil {
		return cfg, err
	}
	for s.hasModule(fmt.Sprintf("%stext_model.encoder.layers.%d", prefix, cfg.Layers)) {
		cfg.Layers++
	}
	if cfg.IntermediateSize, err = s.dim("text encoder MLP width", prefix+"text_model.encoder.layers.0.mlp.fc1.weight", 0); err != nil {
		return cfg, err
	}
	if s.has(prefix + "text_projection.weight") {
		cfg.ProjectionDim, _ = s.dim("", prefix+"text_projection.weight", 0)
	}
	cfg.HiddenAct = "quick_gelu"
	cfg.Heads = defaultHeads(cfg.HiddenSize)
	return cfg, nil
}

// inferOpenCLIP derives an OpenCLIP text tower's architecture. dropLast is
// set for SD 2.x, whose diffusers conversion keeps only the layers up to the
// penultimate one, the layer whose output SD 2.x conditions on.
func inferOpenCLIP(s shapeIndex, prefix string, dropLast, projection bool) (TextEncoderConfig, error) {
	var cfg TextEncoderConfig
	var err error
	tok := prefix + "token_embedding.weight"
	if cfg.VocabSize, err = s.dim("text encoder vocabulary", tok, 0); err != nil {
		return cfg, err
	}
	cfg.HiddenSize, _ = s.dim("", tok, 1)
	if cfg.MaxPositions, err = s.dim("text encoder positions", prefix+"positional_embedding", 0); err != nil {
		return cfg, err
	}
	for s.hasModule(fmt.Sprintf("%stransformer.resblocks.%d", prefix, cfg.Layers)) {
		cfg.Layers++
	}
	if cfg.IntermediateSize, err = s.dim("text encoder MLP width", prefix+"transformer.resblocks.0.mlp.c_fc.weight", 0); err != nil {
		return cfg, err
	}
	if dropLast && cfg.Layers > 1 {
		cfg.Layers--
	}
	if projection {
		if cfg.ProjectionDim, err = s.dim("text projection width", prefix+"text_projection", 1); err != nil {
			return cfg, err
		}
	}
	cfg.HiddenAct = "gelu"
	cfg.Heads = defaultHeads(cfg.HiddenSize)
	return cfg, nil
}

// defaultHeads is the head count for a text encoder width when no config
// says otherwise: every released CLIP text tower uses 64-wide heads. Widths
// that are not a multiple of 64 only occur in test models, which use 16-wide
// heads so that they still exercise more than one head.
func defaultHeads(width int) int {
	switch {
	case width >= 64 && width%64 == 0:
		return width / 64
	case width >= 16 && width%16 == 0:
		return width / 16
	}
	return 1
}

// applyFamilyDefaults fills what shapes cannot tell: UNet heads, sample
// sizes and the VAE scaling factor. SD 1.x uses 8 heads in every block;
// SD 2.x and SDXL use 64-wide heads.
func applyFamilyDefaults(f Family, u *UNetConfig, v *VAEConfig) {
	u.Heads = make([]int, len(u.BlockOutChannels))
	for i, ch := range u.BlockOutChannels {
		if f == SD1 || ch%64 != 0 {
			u.Heads[i] = 8
		} else {
			u.Heads[i] = ch / 64
		}
	}
	switch f {
	case SDXL:
		u.SampleSize, v.SampleSize, v.ScalingFactor = 128, 1024, 0.13025
	case SD2:
		u.SampleSize, v.SampleSize, v.ScalingFactor = 96, 768, 0.18215
	default:
		u.SampleSize, v.SampleSize, v.ScalingFactor = 64, 512, 0.18215
	}
}
