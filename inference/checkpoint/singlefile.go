package checkpoint

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sdfleet/sdfleet/inference/safetensors"
)

// Where each text encoder lives in a single-file checkpoint.
const (
	ldmCLIP       = "cond_stage_model.transformer."        // SD 1.x, Hugging Face CLIP
	ldmOpenCLIP   = "cond_stage_model.model."              // SD 2.x, OpenCLIP ViT-H
	ldmXLCLIP     = "conditioner.embedders.0.transformer." // SDXL, CLIP ViT-L
	ldmXLOpenCLIP = "conditioner.embedders.1.model."       // SDXL, OpenCLIP bigG
	ldmVAEPrefix  = "first_stage_model."
	positionIDs   = "text_model.embeddings.position_ids"
)

// ldmIgnored are buffers that original checkpoints carry besides the
// weights: the training noise schedule and bookkeeping of the EMA.
var ldmIgnored = map[string]bool{
	"alphas_cumprod": true, "alphas_cumprod_prev": true, "betas": true,
	"log_one_minus_alphas_cumprod": true, "posterior_log_variance_clipped": true,
	"posterior_mean_coef1": true, "posterior_mean_coef2": true, "posterior_variance": true,
	"sqrt_alphas_cumprod": true, "sqrt_one_minus_alphas_cumprod": true,
	"sqrt_recip_alphas_cumprod": true, "sqrt_recipm1_alphas_cumprod": true,
	"logvar": true, "lvlb_weights": true,
}

var ldmIgnoredPrefixes = []string{"model_ema.", "first_stage_model.loss.", "denoiser."}

// detectSingleFileFamily decides the family from which text encoders the
// file holds.
func detectSingleFileFamily(s shapeIndex) (Family, error) {
	switch {
	case s.hasPrefix(ldmXLOpenCLIP):
		return SDXL, nil
	case s.hasPrefix(ldmOpenCLIP):
		return SD2, nil
	case s.hasPrefix(ldmCLIP):
		return SD1, nil
	}
	return "", fmt.Errorf("no text encoder found: want tensors under %q (SD 1.x), %q (SD 2.x) or %q (SDXL)", ldmCLIP, ldmOpenCLIP, "conditioner.embedders.")
}

func openSingleFile(path string, opts Options) (*Model, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	m, err := bindSingleFile(path, f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// legacyCLIP is how SD 1.x files saved with old transformers versions
// name the text encoder: without the "text_model." level.
const legacyCLIP = ldmCLIP

// legacyCLIPName maps a current single-file text-encoder name to its
// legacy spelling, "" for other names.
func legacyCLIPName(name string) string {
	if rest, ok := strings.CutPrefix(name, ldmCLIP+"text_model."); ok {
		return legacyCLIP + rest
	}
	return ""
}

// addLegacyCLIPAliases makes legacy text-encoder names visible under their
// current spelling, so inference does not need to know about them.
func addLegacyCLIPAliases(s shapeIndex) {
	aliases := map[string][]int64{}
	for name, shape := range s.shapes {
		for _, top := range []string{"embeddings.", "encoder.", "final_layer_norm."} {
			if rest, ok := strings.CutPrefix(name, legacyCLIP+top); ok {
				aliases[ldmCLIP+"text_model."+top+rest] = shape
			}
		}
	}
	for name, shape := range aliases {
		s.add(name, shape)
	}
}

func bindSingleFile(path string, f *safetensors.File, opts Options) (*Model, error) {
	s := indexShapes(f)
	addLegacyCLIPAliases(s)
	if !s.hasPrefix(ldmUNet) {
		return nil, fmt.Errorf("checkpoint %s: not a Stable Diffusion checkpoint: no tensors under %q", path, ldmUNet)
	}
	if singleFileRefiner(s) {
		return nil, refinerError(path, "its only text encoder is OpenCLIP under "+ldmXLRefinerOpenCLIP)
	}
	var err error
	m := &Model{Path: path, Layout: SingleFile, files: []*safetensors.File{f}}
	fail := func(err error) (*Model, error) { return nil, fmt.Errorf("checkpoint %s: %w", path, err) }
	if m.Family, err = detectSingleFileFamily(s); err != nil {
		return fail(err)
	}
	if m.UNet, err = inferUNet(s, true); err != nil {
		return fail(err)
	}
	if m.VAE, err = inferVAE(s, true); err != nil {
		return fail(err)
	}
	applyFamilyDefaults(m.Family, &m.UNet, &m.VAE)

	dir := filepath.Dir(path)
	m.tokenizers = map[Component]string{TextEncoder: orDefault(opts.TokenizerDir, filepath.Join(dir, "tokenizer"))}
	var te1, te2 []entry
	var ignoredTE []string
	switch m.Family {
	case SD1:
		if m.TextEncoder, err = inferCLIP(s, ldmCLIP); err != nil {
			return fail(err)
		}
		te1 = clipSpec(m.TextEncoder, true, ldmCLIP)
		ignoredTE = []string{ldmCLIP + positionIDs, legacyCLIPName(ldmCLIP + positionIDs)}
	case SD2:
		if m.TextEncoder, err = inferOpenCLIP(s, ldmOpenCLIP, true, false); err != nil {
			return fail(err)
		}
		te1 = openCLIPSpec(m.TextEncoder, ldmOpenCLIP)
		// The final resblock, text_projection and logit_scale are not used
		// by SD 2.x, which conditions on the penultimate layer.
		ignoredTE = []string{ldmOpenCLIP + "logit_scale", ldmOpenCLIP + "text_projection", ldmOpenCLIP + "attn_mask",
			fmt.Sprintf("%stransformer.resblocks.%d.", ldmOpenCLIP, m.TextEncoder.Layers)}
	case SDXL:
		if m.TextEncoder, err = inferCLIP(s, ldmXLCLIP); err != nil {
			return fail(err)
		}
		te1 = clipSpec(m.TextEncoder, true, ldmXLCLIP)
		cfg2, err := inferOpenCLIP(s, ldmXLOpenCLIP, false, true)
		if err != nil {
			return fail(err)
		}
		m.TextEncoder2 = &cfg2
		te2 = openCLIPSpec(cfg2, ldmXLOpenCLIP)
		m.tokenizers[TextEncoder2] = orDefault(opts.Tokenizer2Dir, filepath.Join(dir, "tokenizer_2"))
		ignoredTE = []string{ldmXLCLIP + positionIDs, ldmXLOpenCLIP + "logit_scale", ldmXLOpenCLIP + "attn_mask"}
	}

	b := newBinder(m)
	b.bind(UNet, f, unetSpec(m.UNet, true), nil)
	b.bind(VAE, f, vaeSpec(m.VAE, true), nil)
	var alias func(string) string
	if m.Family == SD1 {
		alias = legacyCLIPName
	}
	b.bind(TextEncoder, f, te1, alias)
	if te2 != nil {
		b.bind(TextEncoder2, f, te2, nil)
	}
	ignored := append(append([]string{}, ldmIgnoredPrefixes...), ignoredTE...)
	b.unexpected(ldmComponent, f, func(name string) bool {
		if ldmIgnored[name] {
			return true
		}
		for _, p := range ignored {
			if name == p || (strings.HasSuffix(p, ".") && strings.HasPrefix(name, p)) {
				return true
			}
		}
		return false
	})
	if err := b.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// ldmComponent attributes a stored single-file name to a component for
// messages about unexpected tensors.
func ldmComponent(name string) Component {
	switch {
	case strings.HasPrefix(name, ldmUNet):
		return UNet
	case strings.HasPrefix(name, ldmVAEPrefix):
		return VAE
	case strings.HasPrefix(name, ldmXLOpenCLIP):
		return TextEncoder2
	case strings.HasPrefix(name, "cond_stage_model."), strings.HasPrefix(name, ldmXLCLIP):
		return TextEncoder
	}
	return "checkpoint"
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
