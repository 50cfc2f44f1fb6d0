package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// unetJSON is the part of a diffusers unet/config.json that matters here.
// attention_head_dim holds, despite its name, the head count for SD 1.x,
// 2.x and SDXL when num_attention_heads is null; both may be a number or a
// list per block, hence the raw fields.
type unetJSON struct {
	InChannels          *int            `json:"in_channels"`
	OutChannels         *int            `json:"out_channels"`
	BlockOutChannels    []int           `json:"block_out_channels"`
	LayersPerBlock      *int            `json:"layers_per_block"`
	CrossAttentionDim   *int            `json:"cross_attention_dim"`
	AttentionHeadDim    json.RawMessage `json:"attention_head_dim"`
	NumAttentionHeads   json.RawMessage `json:"num_attention_heads"`
	UseLinearProjection *bool           `json:"use_linear_projection"`
	NormNumGroups       *int            `json:"norm_num_groups"`
	SampleSize          *int            `json:"sample_size"`
}

type vaeJSON struct {
	InChannels       *int     `json:"in_channels"`
	OutChannels      *int     `json:"out_channels"`
	LatentChannels   *int     `json:"latent_channels"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   *int     `json:"layers_per_block"`
	NormNumGroups    *int     `json:"norm_num_groups"`
	ScalingFactor    *float64 `json:"scaling_factor"`
	SampleSize       *int     `json:"sample_size"`
}

type clipJSON struct {
	VocabSize             *int   `json:"vocab_size"`
	HiddenSize            *int   `json:"hidden_size"`
	IntermediateSize      *int   `json:"intermediate_size"`
	NumHiddenLayers       *int   `json:"num_hidden_layers"`
	NumAttentionHeads     *int   `json:"num_attention_heads"`
	MaxPositionEmbeddings *int   `json:"max_position_embeddings"`
	HiddenAct             string `json:"hidden_act"`
	ProjectionDim         *int   `json:"projection_dim"`
}

// weightFiles are the names diffusers gives a component's weights.
var weightFiles = map[Component]string{
	UNet: "diffusion_pytorch_model", VAE: "diffusion_pytorch_model",
	TextEncoder: "model", TextEncoder2: "model",
}

// findWeights picks the component's .safetensors file, honouring the
// requested variant but falling back to the other one.
func findWeights(dir string, c Component, variant string) (string, error) {
	base := filepath.Join(dir, string(c), weightFiles[c])
	plain, fp16 := base+".safetensors", base+".fp16.safetensors"
	order := []string{plain, fp16}
	if variant == "fp16" {
		order = []string{fp16, plain}
	}
	for _, p := range order {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	for _, ext := range []string{".bin", ".fp16.bin", ".safetensors.index.json"} {
		if _, err := os.Stat(base + ext); err == nil {
			return "", fmt.Errorf("component %s: only %s found; want a single %s (pickle and sharded weights are not supported)", c, base+ext, plain)
		}
	}
	return "", fmt.Errorf("component %s: no weights, want %s or %s", c, plain, fp16)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func openDiffusers(dir string, opts Options) (*Model, error) {
	fail := func(err error) (*Model, error) { return nil, fmt.Errorf("checkpoint %s: %w", dir, err) }
	var index map[string]json.RawMessage
	if err := readJSON(filepath.Join(dir, "model_index.json"), &index); err != nil {
		return fail(err)
	}
	if diffusersRefiner(index) {
		return nil, refinerError(dir, "model_index.json has text_encoder_2 without text_encoder, or requires_aesthetics_score")
	}
	components := []Component{UNet, VAE, TextEncoder}
	if raw, ok := index[string(TextEncoder2)]; ok && !strings.Contains(string(raw), "null") {
		components = append(components, TextEncoder2)
	}
	m := &Model{Path: dir, Layout: Diffusers}
	files := map[Component]*safetensors.File{}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	var errs []error
	for _, c := range components {
		if _, ok := index[string(c)]; !ok {
			errs = append(errs, fmt.Errorf("model_index.json lists no %s", c))
			continue
		}
		p, err := findWeights(dir, c, opts.Variant)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := safetensors.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files[c] = f
		m.files = append(m.files, f)
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return fail(err)
	}
	m.tokenizers = map[Component]string{TextEncoder: filepath.Join(dir, "tokenizer")}
	if files[TextEncoder2] != nil {
		m.tokenizers[TextEncoder2] = filepath.Join(dir, "tokenizer_2")
	}
	mm, err := bindDiffusers(m, files)
	if err != nil {
		closeAll()
		return nil, err
	}
	return mm, nil
}

func bindDiffusers(m *Model, files map[Component]*safetensors.File) (*Model, error) {
	var err error
	fail := func(c Component, err error) (*Model, error) {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", m.Path, c, err)
	}
	us := indexShapes(files[UNet])
	if m.UNet, err = inferUNet(us, false); err != nil {
		return fail(UNet, err)
	}
	if m.VAE, err = inferVAE(indexShapes(files[VAE]), false); err != nil {
		return fail(VAE, err)
	}
	if m.TextEncoder, err = inferCLIP(indexShapes(files[TextEncoder]), ""); err != nil {
		return fail(TextEncoder, err)
	}
	switch {
	case files[TextEncoder2] != nil || m.UNet.AdditionEmbedDim > 0:
		m.Family = SDXL
	case m.UNet.CrossAttentionDim == 1024 || textEncoderAct(files[TextEncoder].Path()) == "gelu":
		// SD 2.x's OpenCLIP encoder is the one with plain GELU; OpenAI
		// CLIP (SD 1.x) uses quick_gelu.
		m.Family = SD2
	default:
		m.Family = SD1
	}
	applyFamilyDefaults(m.Family, &m.UNet, &m.VAE)
	if m.Family == SD2 {
		m.TextEncoder.HiddenAct = "gelu"
	}
	if f := files[TextEncoder2]; f != nil {
		cfg, err := inferCLIP(indexShapes(f), "")
		if err != nil {
			return fail(TextEncoder2, err)
		}
		cfg.HiddenAct = "gelu"
		m.TextEncoder2 = &cfg
	} else if m.Family == SDXL {
		return fail(TextEncoder2, errors.New("SDXL UNet found but model_index.json lists no text_encoder_2"))
	}

	b := newBinder(m)
	b.applyUNetJSON(files[UNet].Path(), &m.UNet)
	b.applyVAEJSON(files[VAE].Path(), &m.VAE)
	b.applyCLIPJSON(TextEncoder, files[TextEncoder].Path(), &m.TextEncoder)
	if m.TextEncoder2 != nil {
		b.applyCLIPJSON(TextEncoder2, files[TextEncoder2].Path(), m.TextEncoder2)
	}

	b.bind(UNet, files[UNet], unetSpec(m.UNet, false), nil)
	b.bind(VAE, files[VAE], vaeSpec(m.VAE, false), oldVAEAttentionName)
	b.bind(TextEncoder, files[TextEncoder], clipSpec(m.TextEncoder, false, ""), nil)
	if m.TextEncoder2 != nil {
		b.bind(TextEncoder2, files[TextEncoder2], clipSpec(*m.TextEncoder2, false, ""), nil)
	}
	for c, f := range files {
		b.unexpected(func(string) Component { return c }, f, func(name string) bool { return name == positionIDs })
	}
	if err := b.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// oldVAEAttentionName gives the pre-0.14 diffusers spelling of the VAE's
// mid-block attention weights (query/key/value/proj_attn).
func oldVAEAttentionName(name string) string {
	if !strings.Contains(name, "mid_block.attentions.0.") {
		return ""
	}
	for _, r := range [][2]string{{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}} {
		if strings.Contains(name, r[0]) {
			return strings.Replace(name, r[0], r[1], 1)
		}
	}
	return ""
}

// textEncoderAct peeks at the text encoder's activation; errors reading
// the config are reported later, when it is applied.
func textEncoderAct(weights string) string {
	var j clipJSON
	if readJSON(configPath(weights), &j) != nil {
		return ""
	}
	return j.HiddenAct
}

// configPath is the config.json beside a component's weights.
func configPath(weights string) string { return filepath.Join(filepath.Dir(weights), "config.json") }

// intsOrInt decodes a JSON number or list of numbers, spreading a single
// number over n blocks. It returns nil for null or absent values.
func intsOrInt(raw json.RawMessage, n int) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		out := make([]int, n)
		for i := range out {
			out[i] = one
		}
		return out, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}

func (b *binder) applyUNetJSON(weights string, u *UNetConfig) {
	path := configPath(weights)
	var j unetJSON
	if err := readJSON(path, &j); err != nil {
		b.configMismatch(UNet, path, "config.json", "readable", err)
		return
	}
	checkInt := func(field string, shapes int, cfg *int) {
		if cfg != nil && *cfg != shapes {
			b.configMismatch(UNet, path, field, shapes, *cfg)
		}
	}
	checkInt("in_channels", u.InChannels, j.InChannels)
	checkInt("out_channels", u.OutChannels, j.OutChannels)
	checkInt("layers_per_block", u.LayersPerBlock, j.LayersPerBlock)
	checkInt("cross_attention_dim", u.CrossAttentionDim, j.CrossAttentionDim)
	if j.BlockOutChannels != nil && fmt.Sprint(j.BlockOutChannels) != fmt.Sprint(u.BlockOutChannels) {
		b.configMismatch(UNet, path, "block_out_channels", u.BlockOutChannels, j.BlockOutChannels)
	}
	if j.UseLinearProjection != nil && *j.UseLinearProjection != u.LinearProjection {
		b.configMismatch(UNet, path, "use_linear_projection", u.LinearProjection, *j.UseLinearProjection)
	}
	heads, err := intsOrInt(j.NumAttentionHeads, len(u.BlockOutChannels))
	if err == nil && heads == nil {
		heads, err = intsOrInt(j.AttentionHeadDim, len(u.BlockOutChannels))
	}
	switch {
	case err != nil:
		b.configMismatch(UNet, path, "attention_head_dim", "a number or list", err)
	case heads != nil && len(heads) != len(u.BlockOutChannels):
		b.configMismatch(UNet, path, "attention_head_dim", fmt.Sprintf("%d values", len(u.BlockOutChannels)), heads)
	case heads != nil:
		u.Heads = heads
	}
	if j.NormNumGroups != nil {
		u.NormGroups = *j.NormNumGroups
	}
	if j.SampleSize != nil {
		u.SampleSize = *j.SampleSize
	}
}

func (b *binder) applyVAEJSON(weights string, v *VAEConfig) {
	path := configPath(weights)
	var j vaeJSON
	if err := readJSON(path, &j); err != nil {
		b.configMismatch(VAE, path, "config.json", "readable", err)
		return
	}
	checkInt := func(field string, shapes int, cfg *int) {
		if cfg != nil && *cfg != shapes {
			b.configMismatch(VAE, path, field, shapes, *cfg)
		}
	}
	checkInt("in_channels", v.InChannels, j.InChannels)
	checkInt("out_channels", v.OutChannels, j.OutChannels)
	checkInt("latent_channels", v.LatentChannels, j.LatentChannels)
	checkInt("layers_per_block", v.LayersPerBlock, j.LayersPerBlock)
	if j.BlockOutChannels != nil && fmt.Sprint(j.BlockOutChannels) != fmt.Sprint(v.BlockOutChannels) {
		b.configMismatch(VAE, path, "block_out_channels", v.BlockOutChannels, j.BlockOutChannels)
	}
	if j.NormNumGroups != nil {
		v.NormGroups = *j.NormNumGroups
	}
	if j.ScalingFactor != nil {
		v.ScalingFactor = *j.ScalingFactor
	}
	if j.SampleSize != nil {
		v.SampleSize = *j.SampleSize
	}
}

func (b *binder) applyCLIPJSON(c Component, weights string, t *TextEncoderConfig) {
	path := configPath(weights)
	var j clipJSON
	if err := readJSON(path, &j); err != nil {
		b.configMismatch(c, path, "config.json", "readable", err)
		return
	}
	checkInt := func(field string, shapes int, cfg *int) {
		if cfg != nil && *cfg != shapes {
			b.configMismatch(c, path, field, shapes, *cfg)
		}
	}
	checkInt("vocab_size", t.VocabSize, j.VocabSize)
	checkInt("hidden_size", t.HiddenSize, j.HiddenSize)
	checkInt("intermediate_size", t.IntermediateSize, j.IntermediateSize)
	checkInt("num_hidden_layers", t.Layers, j.NumHiddenLayers)
	checkInt("max_position_embeddings", t.MaxPositions, j.MaxPositionEmbeddings)
	if t.ProjectionDim > 0 {
		checkInt("projection_dim", t.ProjectionDim, j.ProjectionDim)
	}
	if j.NumAttentionHeads != nil {
		if *j.NumAttentionHeads <= 0 || t.HiddenSize%*j.NumAttentionHeads != 0 {
			b.configMismatch(c, path, "num_attention_heads", fmt.Sprintf("a divisor of %d", t.HiddenSize), *j.NumAttentionHeads)
		} else {
			t.Heads = *j.NumAttentionHeads
		}
	}
	if j.HiddenAct != "" {
		t.HiddenAct = j.HiddenAct
	}
}
