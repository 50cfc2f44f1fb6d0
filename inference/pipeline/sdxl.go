package pipeline

import (
	"fmt"
	"time"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/models/clip"
	"github.com/sdfleet/sdfleet/inference/models/unet"
	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// SDXL's defaults.
const (
	// XLDefaultSide is the width and height SDXL base was trained at.
	XLDefaultSide = 1024
)

// DefaultSide is the image width and height a model of the family is
// made for: 1024 for SDXL, 512 otherwise.
func DefaultSide(f checkpoint.Family) int {
	if f == checkpoint.SDXL {
		return XLDefaultSide
	}
	return 512
}

// FamilyLabel is how the PNG parameters and logs name a model family.
func FamilyLabel(f checkpoint.Family) string {
	switch f {
	case checkpoint.SDXL:
		return "SDXL"
	case checkpoint.SD2:
		return "SD 2"
	case checkpoint.SD1:
		return "SD 1"
	}
	return string(f)
}

// openSecondTokenizer loads SDXL's second tokenizer (diffusers'
// tokenizer_2), which pads as its own special_tokens_map.json says ("!"
// for the released model) rather than with the end token.
func openSecondTokenizer(m *checkpoint.Model) (*tokenizer.Tokenizer, error) {
	dir, err := m.TokenizerDir(checkpoint.TextEncoder2)
	if err != nil {
		return nil, &ModelError{Path: m.Path, Err: err}
	}
	tok, err := tokenizer.LoadAny(dir)
	if err != nil {
		return nil, &ModelError{Path: dir, Err: err}
	}
	if m.TextEncoder2.VocabSize < tok.VocabSize() {
		return nil, &ModelError{Path: dir, Err: fmt.Errorf("tokenizer has %d symbols but the second text encoder's embedding only %d", tok.VocabSize(), m.TextEncoder2.VocabSize)}
	}
	return tok, nil
}

// textEncoders loads SDXL's two text encoders: CLIP ViT-L without its last
// layer (its output is read from the penultimate layer) and OpenCLIP bigG
// with every layer and text_projection, for the pooled embedding.
func (p *Pipeline) textEncoders() (*clip.Model, *clip.Model, error) {
	if p.text == nil {
		start := time.Now()
		m, err := clip.New(p.b, models.FromCheckpoint(p.model, checkpoint.TextEncoder), p.model.TextEncoder, clip.Options{SkipLastLayers: 1})
		if err != nil {
			return nil, nil, p.modelErr(err)
		}
		p.text = m
		p.load += time.Since(start)
		p.log.V(1).Info("text encoder loaded", "seconds", time.Since(start).Seconds(), "bytes", m.PackedBytes())
	}
	if p.text2 == nil {
		start := time.Now()
		m, err := clip.New(p.b, models.FromCheckpoint(p.model, checkpoint.TextEncoder2), *p.model.TextEncoder2, clip.Options{Projection: true})
		if err != nil {
			return nil, nil, p.modelErr(err)
		}
		p.text2 = m
		p.dropStoredWeights()
		p.load += time.Since(start)
		p.log.V(1).Info("second text encoder loaded", "seconds", time.Since(start).Seconds(), "bytes", m.PackedBytes())
	}
	return p.text, p.text2, nil
}

func (p *Pipeline) dropText2() {
	if p.text2 != nil {
		p.text2.Release()
		p.text2 = nil
	}
}

// xlConditioning is what SDXL's UNet is conditioned on, one row per image
// of the batch (unconditional first when guided).
type xlConditioning struct {
	// context [batch, 77, w1+w2]: both encoders' penultimate hidden states
	// side by side.
	context backend.Tensor
	// added [batch, AdditionEmbedDim]: the pooled embedding and the size
	// conditioning, the input of the UNet's text_time embedding.
	added backend.Tensor
}

// encodeXL encodes the prompts with both text encoders. With guidance and
// an empty negative prompt the unconditional context and pooled embedding
// are zeros, as the released model's pipeline does
// (force_zeros_for_empty_prompt) instead of encoding the empty text.
func (p *Pipeline) encodeXL(req Request, guided bool, hooks Hooks, out *Output) (xlConditioning, error) {
	prompts := []string{req.Prompt}
	zeroUncond := guided && req.NegativePrompt == ""
	if guided && !zeroUncond {
		prompts = []string{req.NegativePrompt, req.Prompt}
	}
	ids1 := make([][]int, len(prompts))
	ids2 := make([][]int, len(prompts))
	eos := make([]int, len(prompts))
	for i, text := range prompts {
		enc := p.tok.Encode(text)
		ids1[i] = enc.IDs
		if enc.Truncated {
			which := "prompt"
			if len(prompts) == 2 && i == 0 {
				which = "negative prompt"
			}
			out.Dropped = append(out.Dropped, enc.Dropped)
			p.log.Info("prompt longer than 75 tokens was truncated", "which", which, "dropped", enc.Dropped)
		}
		enc2 := p.tok2.Encode(text)
		ids2[i] = enc2.IDs
		// The pooled embedding is read at the end token, the last of the
		// unpadded sequence.
		eos[i] = enc2.Length - 1
	}
	te1, te2, err := p.textEncoders()
	if err != nil {
		return xlConditioning{}, err
	}
	encStart := time.Now()
	h1, err := te1.EncodeHidden(ids1)
	if err != nil {
		return xlConditioning{}, err
	}
	defer p.b.Release(h1)
	h2, pooled, err := te2.EncodePenultimate(ids2, eos)
	if err != nil {
		return xlConditioning{}, err
	}
	defer p.b.Release(h2)
	defer p.b.Release(pooled)
	n, T := len(prompts), h1.Dims()[1]
	w1, w2 := h1.Dims()[2], h2.Dims()[2]
	if w1+w2 != p.model.UNet.CrossAttentionDim {
		return xlConditioning{}, p.modelErr(fmt.Errorf("text encoder widths %d + %d do not make the UNet's cross-attention width %d", w1, w2, p.model.UNet.CrossAttentionDim))
	}
	work := backend.NewScope(p.b)
	defer work.Release()
	ctx, err := work.Alloc(n, T, w1+w2)
	if err != nil {
		return xlConditioning{}, err
	}
	if err := p.b.Concat(ctx, h1, h2); err != nil {
		return xlConditioning{}, err
	}
	if zeroUncond {
		if ctx, err = prependZeroRow(work, ctx); err != nil {
			return xlConditioning{}, err
		}
		if pooled, err = prependZeroRow(work, pooled); err != nil {
			return xlConditioning{}, err
		}
	}
	if hooks.Pooled != nil {
		host, err := backend.ToHost(p.b, pooled)
		if err != nil {
			return xlConditioning{}, err
		}
		hooks.Pooled(host)
	}
	added, err := unet.AddedConditioning(p.b, p.model.UNet, pooled, unet.DefaultSizeConditioning(req.Width, req.Height))
	if err != nil {
		return xlConditioning{}, err
	}
	// A backend that records work runs it here, so the phase is timed.
	if err := p.b.Sync(); err != nil {
		p.b.Release(added)
		return xlConditioning{}, err
	}
	out.Timings.Encode = time.Since(encStart)
	work.Keep(ctx)
	return xlConditioning{context: ctx, added: added}, nil
}

// prependZeroRow returns [1+N, ...]: a row of zeros, then t's rows. The
// copy goes through the host; it is one small tensor per request.
func prependZeroRow(work *backend.Scope, t backend.Tensor) (backend.Tensor, error) {
	b := work.Backend()
	host, err := backend.ToHost(b, t)
	if err != nil {
		return nil, err
	}
	dims := append([]int{}, t.Dims()...)
	row := len(host.Data) / dims[0]
	dims[0]++
	data := make([]float32, row+len(host.Data))
	copy(data[row:], host.Data)
	work.Free(t)
	return work.Upload(data, dims...)
}
