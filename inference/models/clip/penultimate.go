package clip

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
)

// EncodePenultimate runs the encoder as SDXL reads its two text encoders.
// hidden [batch, tokens, width] is the penultimate hidden state: the input
// of the last loaded layer, without the final layer norm. When pooledAt is
// given (one token position per sequence, its end token), pooled
// [batch, ProjectionDim] is the last layer's output through the final
// layer norm at that position, through text_projection, which needs
// Options.Projection; when pooledAt is nil the last layer is not run and
// pooled is nil. Both are tensors of the model's backend that the caller
// releases.
func (m *Model) EncodePenultimate(ids [][]int, pooledAt []int) (hidden, pooled backend.Tensor, err error) {
	if len(m.layers) < 2 {
		return nil, nil, fmt.Errorf("text encoder: %d layers loaded, the penultimate hidden state needs at least 2", len(m.layers))
	}
	return m.encodeStates(ids, len(m.layers)-1, pooledAt)
}

// EncodeHidden returns the output of every loaded layer without the final
// layer norm, [batch, tokens, width], a tensor of the model's backend that
// the caller releases. SDXL reads CLIP ViT-L this way, loaded without its
// last layer (Options.SkipLastLayers 1), which is its penultimate hidden
// state.
func (m *Model) EncodeHidden(ids [][]int) (backend.Tensor, error) {
	hidden, _, err := m.encodeStates(ids, len(m.layers), nil)
	return hidden, err
}

// encodeStates returns the residual stream after the first hiddenAfter
// layers and, when pooledAt is set, the pooled projection after all of
// them.
func (m *Model) encodeStates(ids [][]int, hiddenAfter int, pooledAt []int) (hidden, pooled backend.Tensor, err error) {
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("text encoder: no sequences to encode")
	}
	if pooledAt != nil && m.proj == nil {
		return nil, nil, fmt.Errorf("text encoder: a pooled embedding needs text_projection, which was not loaded")
	}
	if pooledAt != nil && len(pooledAt) != len(ids) {
		return nil, nil, fmt.Errorf("text encoder: %d pooled positions for %d sequences", len(pooledAt), len(ids))
	}
	T := len(ids[0])
	if T == 0 || T > m.cfg.MaxPositions {
		return nil, nil, fmt.Errorf("text encoder: sequence length %d, expected 1 to %d", T, m.cfg.MaxPositions)
	}
	flat := make([]int, 0, len(ids)*T)
	positions := make([]int, 0, len(ids)*T)
	rows := make([]int, len(pooledAt))
	for i, s := range ids {
		if len(s) != T {
			return nil, nil, fmt.Errorf("text encoder: sequence %d has %d ids, expected %d like the first", i, len(s), T)
		}
		flat = append(flat, s...)
		for p := range T {
			positions = append(positions, p)
		}
		if pooledAt != nil {
			if pooledAt[i] < 0 || pooledAt[i] >= T {
				return nil, nil, fmt.Errorf("text encoder: pooled position %d of sequence %d, expected 0 to %d", pooledAt[i], i, T-1)
			}
			rows[i] = i*T + pooledAt[i]
		}
	}
	B, D := len(ids), m.cfg.HiddenSize
	work := backend.NewScope(m.b)
	defer work.Release()
	shapes := [][]int{{B, T, D}, {B, T, D}, {B, T, D}, {B, T, D}, {B, T, D}, {B, T, D}, {B, T, m.cfg.IntermediateSize}}
	bufs := make([]backend.Tensor, len(shapes))
	for i, s := range shapes {
		if bufs[i], err = work.Alloc(s...); err != nil {
			return nil, nil, fmt.Errorf("text encoder: %w", err)
		}
	}
	x, h, q, k, v, a, mlp := bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], bufs[6]
	if err := m.embed(x, h, flat, positions); err != nil {
		return nil, nil, err
	}
	for i := range hiddenAfter {
		if err := m.layer(i, x, h, q, k, v, a, mlp); err != nil {
			return nil, nil, err
		}
	}
	if hidden, err = work.Alloc(B, T, D); err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if err := m.b.Axpby(hidden, 1, x, 0, x); err != nil {
		return nil, nil, fmt.Errorf("text encoder penultimate hidden state: %w", err)
	}
	if pooledAt == nil {
		work.Keep(hidden)
		return hidden, nil, nil
	}
	for i := hiddenAfter; i < len(m.layers); i++ {
		if err := m.layer(i, x, h, q, k, v, a, mlp); err != nil {
			return nil, nil, err
		}
	}
	if err := m.b.LayerNorm(h, x, m.final.Scale, m.final.Shift, layerNormEps); err != nil {
		return nil, nil, fmt.Errorf("text encoder final layer norm: %w", err)
	}
	// The end tokens' rows are gathered from the normed states seen as a
	// [B*T, D] table.
	table, err := m.b.Reshape(h, B*T, D)
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder pooled embedding: %w", err)
	}
	eos, err := work.Alloc(B, D)
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if err := m.b.Embedding(eos, table, rows); err != nil {
		return nil, nil, fmt.Errorf("text encoder pooled embedding: %w", err)
	}
	if pooled, err = work.Alloc(B, m.cfg.ProjectionDim); err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if err := m.b.MatMul(pooled, eos, m.proj, backend.Epilogue{}); err != nil {
		return nil, nil, fmt.Errorf("text encoder text_projection: %w", err)
	}
	work.Keep(hidden)
	work.Keep(pooled)
	return hidden, pooled, nil
}
