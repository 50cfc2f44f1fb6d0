package clip

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
)

// layerNormEps is CLIP's layer_norm_eps.
const layerNormEps = 1e-5

// Options adjust how the encoder is run.
type Options struct {
	// SkipLastLayers leaves out this many final transformer layers; the
	// final layer norm is still applied.
	SkipLastLayers int
	// Projection loads text_projection [ProjectionDim, width], which
	// EncodePenultimate applies to the pooled embedding (SDXL's second
	// encoder).
	Projection bool
}

// Model is a loaded text encoder.
type Model struct {
	cfg    checkpoint.TextEncoderConfig
	opts   Options
	b      backend.Backend
	act    backend.Activation
	tokens backend.Tensor // [vocab, width]
	pos    backend.Tensor // [positions, width]
	layers []layer
	final  models.Norm
	proj   backend.Linear // text_projection, nil unless Options.Projection
	bytes  int64
	// weights unloads what the constructor loaded.
	weights *models.Loader
}

type layer struct {
	ln1, ln2   models.Norm
	q, k, v, o backend.Linear
	fc1, fc2   backend.Linear
}

// New loads a text encoder with the given configuration from src, whose
// names are the diffusers ones (text_model.encoder.layers.N...).
func New(b backend.Backend, src models.Source, cfg checkpoint.TextEncoderConfig, opts Options) (*Model, error) {
	if cfg.HiddenSize <= 0 || cfg.Heads <= 0 || cfg.HiddenSize%cfg.Heads != 0 || cfg.Layers <= 0 || cfg.MaxPositions <= 0 || cfg.VocabSize <= 0 || cfg.IntermediateSize <= 0 {
		return nil, fmt.Errorf("text encoder config %+v: expected positive sizes with heads dividing the width", cfg)
	}
	if opts.SkipLastLayers < 0 || opts.SkipLastLayers >= cfg.Layers {
		return nil, fmt.Errorf("text encoder option SkipLastLayers: %d, expected 0 to %d", opts.SkipLastLayers, cfg.Layers-1)
	}
	m := &Model{cfg: cfg, opts: opts, b: b}
	switch cfg.HiddenAct {
	case "quick_gelu":
		m.act = backend.QuickGELU
	case "gelu":
		m.act = backend.GELU
	default:
		return nil, fmt.Errorf("text encoder hidden_act %q: expected quick_gelu or gelu", cfg.HiddenAct)
	}
	D, I := cfg.HiddenSize, cfg.IntermediateSize
	root := models.NewLoader(b, src)
	l := root.With("text_model.")
	m.tokens = l.Tensor("embeddings.token_embedding.weight", cfg.VocabSize, D)
	m.pos = l.Tensor("embeddings.position_embedding.weight", cfg.MaxPositions, D)
	// Layers past the ones used are never loaded.
	for i := range cfg.Layers - opts.SkipLastLayers {
		p := l.With(fmt.Sprintf("encoder.layers.%d.", i))
		m.layers = append(m.layers, layer{
			ln1: p.Norm("layer_norm1", D),
			q:   p.Linear("self_attn.q_proj", D, D, true),
			k:   p.Linear("self_attn.k_proj", D, D, true),
			v:   p.Linear("self_attn.v_proj", D, D, true),
			o:   p.Linear("self_attn.out_proj", D, D, true),
			ln2: p.Norm("layer_norm2", D),
			fc1: p.Linear("mlp.fc1", I, D, true),
			fc2: p.Linear("mlp.fc2", D, I, true),
		})
	}
	m.final = l.Norm("final_layer_norm", D)
	if opts.Projection {
		if cfg.ProjectionDim <= 0 {
			return nil, fmt.Errorf("text encoder option Projection: the config has no projection width")
		}
		m.proj = root.Linear("text_projection", cfg.ProjectionDim, D, false)
	}
	if err := root.Err(); err != nil {
		root.Unload()
		return nil, err
	}
	m.weights = root
	m.bytes = root.PackedBytes()
	return m, nil
}

// Width is the embedding width (768 for SD 1.x).
func (m *Model) Width() int { return m.cfg.HiddenSize }

// Release frees the network's weights on its backend; the network must
// not be used afterwards.
func (m *Model) Release() {
	if m.weights != nil {
		m.weights.Unload()
		m.weights = nil
	}
}

// PackedBytes is the memory the loaded weights occupy in the backend.
func (m *Model) PackedBytes() int64 { return m.bytes }

// Encode runs the encoder over a batch of equally long id sequences
// (normally 77 each) and returns [batch, tokens, width], a tensor of the
// model's backend that the caller releases.
func (m *Model) Encode(ids [][]int) (backend.Tensor, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("text encoder: no sequences to encode")
	}
	T := len(ids[0])
	if T == 0 || T > m.cfg.MaxPositions {
		return nil, fmt.Errorf("text encoder: sequence length %d, expected 1 to %d", T, m.cfg.MaxPositions)
	}
	flat := make([]int, 0, len(ids)*T)
	positions := make([]int, 0, len(ids)*T)
	for i, s := range ids {
		if len(s) != T {
			return nil, fmt.Errorf("text encoder: sequence %d has %d ids, expected %d like the first", i, len(s), T)
		}
		flat = append(flat, s...)
		for p := range T {
			positions = append(positions, p)
		}
	}
	B, D := len(ids), m.cfg.HiddenSize
	work := backend.NewScope(m.b)
	defer work.Release()
	shapes := [][]int{{B, T, D}, {B, T, D}, {B, T, D}, {B, T, D}, {B, T, D}, {B, T, m.cfg.IntermediateSize}}
	bufs := make([]backend.Tensor, len(shapes))
	for i, s := range shapes {
		var err error
		if bufs[i], err = work.Alloc(s...); err != nil {
			return nil, fmt.Errorf("text encoder: %w", err)
		}
	}
	x, q, k, v, a, mlp := bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5]
	// h outlives the scope: it ends as the result.
	h, err := m.b.Alloc(B, T, D)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	if err := m.encode(x, h, q, k, v, a, mlp, flat, positions); err != nil {
		m.b.Release(h)
		return nil, err
	}
	return h, nil
}

func (m *Model) encode(x, h, q, k, v, a, mlp backend.Tensor, flat, positions []int) error {
	if err := m.embed(x, h, flat, positions); err != nil {
		return err
	}
	for i := range m.layers {
		if err := m.layer(i, x, h, q, k, v, a, mlp); err != nil {
			return err
		}
	}
	if err := m.b.LayerNorm(h, x, m.final.Scale, m.final.Shift, layerNormEps); err != nil {
		return fmt.Errorf("text encoder final layer norm: %w", err)
	}
	return nil
}

// embed writes the token and position embeddings of flat into x, using h
// as scratch.
func (m *Model) embed(x, h backend.Tensor, flat, positions []int) error {
	if err := m.b.Embedding(x, m.tokens, flat); err != nil {
		return fmt.Errorf("text encoder token embedding: %w", err)
	}
	// Position embeddings are gathered like tokens, then added.
	if err := m.b.Embedding(h, m.pos, positions); err != nil {
		return fmt.Errorf("text encoder position embedding: %w", err)
	}
	if err := m.b.Axpby(x, 1, x, 1, h); err != nil {
		return fmt.Errorf("text encoder position embedding: %w", err)
	}
	return nil
}

// layer runs transformer layer i on the residual stream x, which holds its
// output afterwards; h, q, k, v, a and mlp are scratch.
func (m *Model) layer(i int, x, h, q, k, v, a, mlp backend.Tensor) error {
	ly := m.layers[i]
	heads := backend.AttentionParams{Heads: m.cfg.Heads, Causal: true}
	steps := []func() error{
		func() error { return m.b.LayerNorm(h, x, ly.ln1.Scale, ly.ln1.Shift, layerNormEps) },
		func() error { return m.b.MatMul(q, h, ly.q, backend.Epilogue{}) },
		func() error { return m.b.MatMul(k, h, ly.k, backend.Epilogue{}) },
		func() error { return m.b.MatMul(v, h, ly.v, backend.Epilogue{}) },
		func() error { return m.b.Attention(a, q, k, v, heads) },
		// The residual stream alternates between x and h so the
		// epilogue's residual never aliases its destination.
		func() error { return m.b.MatMul(h, a, ly.o, backend.Epilogue{Residual: x}) },
		func() error { return m.b.LayerNorm(x, h, ly.ln2.Scale, ly.ln2.Shift, layerNormEps) },
		func() error { return m.b.MatMul(mlp, x, ly.fc1, backend.Epilogue{Act: m.act}) },
		func() error { return m.b.MatMul(x, mlp, ly.fc2, backend.Epilogue{Residual: h}) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("text encoder layer %d: %w", i, err)
		}
	}
	return nil
}
