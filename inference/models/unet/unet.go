package unet

import (
	"fmt"
	"math"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
)

// Normalisation epsilons of the published architecture.
const (
	resnetEps      = 1e-5 // norm_eps of the ResNet blocks and conv_norm_out
	transformerEps = 1e-6 // the group norm in front of each spatial transformer
	layerNormEps   = 1e-5 // the layer norms inside transformer blocks
)

// Model is a loaded UNet.
type Model struct {
	cfg             checkpoint.UNetConfig
	b               backend.Backend
	timeIn, timeOut backend.Linear
	// addIn and addOut are SDXL's text_time embedding, nil without one.
	addIn, addOut    backend.Linear
	convIn, convOut  backend.Conv2D
	normOut          models.Norm
	down             []block
	midRes0, midRes1 *resnet
	midAttn          *transformer
	up               []block
	bytes            int64
	// weights unloads what the constructor loaded.
	weights *models.Loader
}

// block is a down or up block: resnets each optionally followed by a
// transformer, then an optional resampling convolution.
type block struct {
	resnets  []*resnet
	attns    []*transformer // nil entries where the block has none
	resample backend.Conv2D
}

type resnet struct {
	norm1, norm2 models.Norm
	conv1, conv2 backend.Conv2D
	temb         backend.Linear
	shortcut     backend.Conv2D
	out          int
}

type transformer struct {
	norm            models.Norm
	projIn, projOut backend.Linear
	blocks          []transformerBlock
	heads           int
}

type transformerBlock struct {
	norm1, norm2, norm3 models.Norm
	q1, k1, v1, o1      backend.Linear
	q2, k2, v2, o2      backend.Linear
	ffIn, ffOut         backend.Linear
}

func checkConfig(cfg checkpoint.UNetConfig) error {
	n := len(cfg.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("unet config BlockOutChannels: empty")
	case len(cfg.Attention) != n || len(cfg.TransformerDepth) != n || len(cfg.Heads) != n:
		return fmt.Errorf("unet config: Attention, TransformerDepth and Heads need one entry per block (%d)", n)
	case cfg.LayersPerBlock <= 0 || cfg.NormGroups <= 0 || cfg.TimeEmbedDim <= 0 || cfg.InChannels <= 0 || cfg.OutChannels <= 0 || cfg.CrossAttentionDim <= 0:
		return fmt.Errorf("unet config %+v: expected positive sizes", cfg)
	case cfg.AdditionEmbedDim < 0:
		return fmt.Errorf("unet config AdditionEmbedDim %d: expected 0 or a positive width", cfg.AdditionEmbedDim)
	case cfg.BlockOutChannels[0]%2 != 0:
		return fmt.Errorf("unet config BlockOutChannels[0] %d: the timestep embedding needs an even width", cfg.BlockOutChannels[0])
	}
	for i, ch := range cfg.BlockOutChannels {
		if ch <= 0 || ch%cfg.NormGroups != 0 {
			return fmt.Errorf("unet config BlockOutChannels[%d] %d: expected a positive multiple of NormGroups %d", i, ch, cfg.NormGroups)
		}
		if cfg.Heads[i] <= 0 || ch%cfg.Heads[i] != 0 {
			return fmt.Errorf("unet config Heads[%d] %d: expected a divisor of %d channels", i, cfg.Heads[i], ch)
		}
	}
	return nil
}

// New loads a UNet from src (diffusers names) with the given config.
func New(b backend.Backend, src models.Source, cfg checkpoint.UNetConfig) (*Model, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, b: b}
	l := models.NewLoader(b, src)
	chs, L, temb := cfg.BlockOutChannels, cfg.LayersPerBlock, cfg.TimeEmbedDim
	ch0, last := chs[0], chs[len(chs)-1]
	m.timeIn = l.Linear("time_embedding.linear_1", temb, ch0, true)
	m.timeOut = l.Linear("time_embedding.linear_2", temb, temb, true)
	if cfg.AdditionEmbedDim > 0 {
		m.addIn = l.Linear("add_embedding.linear_1", temb, cfg.AdditionEmbedDim, true)
		m.addOut = l.Linear("add_embedding.linear_2", temb, temb, true)
	}
	m.convIn = l.Conv("conv_in", ch0, cfg.InChannels, 3, 1)

	skips := []int{ch0}
	in := ch0
	for i, ch := range chs {
		var blk block
		for j := range L {
			p := l.With(fmt.Sprintf("down_blocks.%d.", i))
			blk.resnets = append(blk.resnets, loadResnet(p.With(fmt.Sprintf("resnets.%d.", j)), in, ch, temb))
			var t *transformer
			if cfg.Attention[i] {
				t = loadTransformer(p.With(fmt.Sprintf("attentions.%d.", j)), ch, cfg.TransformerDepth[i], cfg.Heads[i], cfg.CrossAttentionDim)
			}
			blk.attns = append(blk.attns, t)
			in = ch
			skips = append(skips, ch)
		}
		if i < len(chs)-1 {
			blk.resample = l.Conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), ch, ch, 3, 2)
			skips = append(skips, ch)
		}
		m.down = append(m.down, blk)
	}
	m.midRes0 = loadResnet(l.With("mid_block.resnets.0."), last, last, temb)
	m.midAttn = loadTransformer(l.With("mid_block.attentions.0."), last, cfg.MidDepth, cfg.Heads[len(chs)-1], cfg.CrossAttentionDim)
	m.midRes1 = loadResnet(l.With("mid_block.resnets.1."), last, last, temb)

	in = last
	for i := range chs {
		rev := len(chs) - 1 - i
		ch := chs[rev]
		var blk block
		p := l.With(fmt.Sprintf("up_blocks.%d.", i))
		for j := 0; j <= L; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			blk.resnets = append(blk.resnets, loadResnet(p.With(fmt.Sprintf("resnets.%d.", j)), in+skip, ch, temb))
			var t *transformer
			if cfg.Attention[rev] {
				t = loadTransformer(p.With(fmt.Sprintf("attentions.%d.", j)), ch, cfg.TransformerDepth[rev], cfg.Heads[rev], cfg.CrossAttentionDim)
			}
			blk.attns = append(blk.attns, t)
			in = ch
		}
		if i < len(chs)-1 {
			blk.resample = p.Conv("upsamplers.0.conv", ch, ch, 3, 1)
		}
		m.up = append(m.up, blk)
	}
	m.normOut = l.Norm("conv_norm_out", ch0)
	m.convOut = l.Conv("conv_out", cfg.OutChannels, ch0, 3, 1)
	if err := l.Err(); err != nil {
		l.Unload()
		return nil, err
	}
	m.weights = l
	m.bytes = l.PackedBytes()
	return m, nil
}

func loadResnet(l *models.Loader, in, out, temb int) *resnet {
	r := &resnet{
		norm1: l.Norm("norm1", in),
		conv1: l.Conv("conv1", out, in, 3, 1),
		temb:  l.Linear("time_emb_proj", out, temb, true),
		norm2: l.Norm("norm2", out),
		conv2: l.Conv("conv2", out, out, 3, 1),
		out:   out,
	}
	if in != out {
		r.shortcut = l.Conv("conv_shortcut", out, in, 1, 1)
	}
	return r
}

func loadTransformer(l *models.Loader, ch, depth, heads, ctx int) *transformer {
	t := &transformer{
		norm:   l.Norm("norm", ch),
		projIn: l.Linear("proj_in", ch, ch, true),
		heads:  heads,
	}
	for k := range depth {
		p := l.With(fmt.Sprintf("transformer_blocks.%d.", k))
		t.blocks = append(t.blocks, transformerBlock{
			norm1: p.Norm("norm1", ch),
			q1:    p.Linear("attn1.to_q", ch, ch, false),
			k1:    p.Linear("attn1.to_k", ch, ch, false),
			v1:    p.Linear("attn1.to_v", ch, ch, false),
			o1:    p.Linear("attn1.to_out.0", ch, ch, true),
			norm2: p.Norm("norm2", ch),
			q2:    p.Linear("attn2.to_q", ch, ch, false),
			k2:    p.Linear("attn2.to_k", ch, ctx, false),
			v2:    p.Linear("attn2.to_v", ch, ctx, false),
			o2:    p.Linear("attn2.to_out.0", ch, ch, true),
			norm3: p.Norm("norm3", ch),
			ffIn:  p.Linear("ff.net.0.proj", 8*ch, ch, true),
			ffOut: p.Linear("ff.net.2", ch, 4*ch, true),
		})
	}
	t.projOut = l.Linear("proj_out", ch, ch, true)
	return t
}

// Config is the configuration the model was built with.
func (m *Model) Config() checkpoint.UNetConfig { return m.cfg }

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

// TimestepEmbedding is the sinusoidal embedding of timestep t with dim
// features, cosines first (flip_sin_to_cos) and frequencies
// exp(-ln(10000)·i/(dim/2)). It is computed in float32 like the reference
// implementation, so large timesteps round the same way.
func TimestepEmbedding(t float64, dim int) []float32 {
	half := dim / 2
	out := make([]float32, 2*half)
	for i := range half {
		exponent := float32(-math.Log(10000)) * float32(i) / float32(half)
		freq := float32(math.Exp(float64(exponent)))
		arg := float32(t) * freq
		out[i] = float32(math.Cos(float64(arg)))
		out[half+i] = float32(math.Sin(float64(arg)))
	}
	return out
}

// Forward predicts the noise in x [N, H, W, InChannels] at timestep t,
// attending to ctx [N, tokens, CrossAttentionDim]; it returns
// [N, H, W, OutChannels], a tensor of the model's backend that the caller
// releases. Every intermediate activation is released before Forward
// returns, so a backend that pools memory runs each step in the same
// buffers.
func (m *Model) Forward(x backend.Tensor, t float64, ctx backend.Tensor) (backend.Tensor, error) {
	return m.ForwardAdded(x, t, ctx, nil)
}

// ForwardAdded is Forward for a UNet with an added embedding (SDXL's
// text_time): added [N, AdditionEmbedDim], made by AddedConditioning,
// goes through add_embedding and is added to the timestep embedding.
func (m *Model) ForwardAdded(x backend.Tensor, t float64, ctx, added backend.Tensor) (backend.Tensor, error) {
	xs, cs := x.Dims(), ctx.Dims()
	if len(xs) != 4 || xs[3] != m.cfg.InChannels {
		return nil, fmt.Errorf("unet input: shape %v, expected [N, H, W, %d]", xs, m.cfg.InChannels)
	}
	n := xs[0]
	if len(cs) != 3 || cs[0] != n || cs[2] != m.cfg.CrossAttentionDim {
		return nil, fmt.Errorf("unet context: shape %v, expected [%d, tokens, %d]", cs, n, m.cfg.CrossAttentionDim)
	}
	switch {
	case m.cfg.AdditionEmbedDim == 0 && added != nil:
		return nil, fmt.Errorf("unet added embedding: this UNet has none")
	case m.cfg.AdditionEmbedDim > 0 && added == nil:
		return nil, fmt.Errorf("unet added embedding: this UNet needs one of %d values per image (SDXL's pooled text embedding and size conditioning)", m.cfg.AdditionEmbedDim)
	case added != nil && (len(added.Dims()) != 2 || added.Dims()[0] != n || added.Dims()[1] != m.cfg.AdditionEmbedDim):
		return nil, fmt.Errorf("unet added embedding: shape %v, expected [%d, %d]", added.Dims(), n, m.cfg.AdditionEmbedDim)
	}
	r := &run{b: m.b, groups: m.cfg.NormGroups, ctx: ctx, added: added, work: backend.NewScope(m.b)}
	defer r.work.Release()
	return r.forward(m, x, t)
}

func (r *run) forward(m *Model, x backend.Tensor, t float64) (backend.Tensor, error) {
	n := x.Dims()[0]
	if err := r.timeEmbedding(m, t, n); err != nil {
		return nil, fmt.Errorf("unet time embedding: %w", err)
	}
	h, err := r.conv(x, m.convIn, nil)
	if err != nil {
		return nil, fmt.Errorf("unet conv_in: %w", err)
	}
	// Skip connections stay alive until the up block that consumes them;
	// every other activation is released as soon as its last reader has
	// been called.
	skips := []backend.Tensor{h}
	for i, blk := range m.down {
		for j, res := range blk.resnets {
			if h, err = r.resnet(h, res); err != nil {
				return nil, fmt.Errorf("unet down block %d resnet %d: %w", i, j, err)
			}
			if blk.attns[j] != nil {
				if h, err = r.transformerThen(h, blk.attns[j]); err != nil {
					return nil, fmt.Errorf("unet down block %d attention %d: %w", i, j, err)
				}
			}
			skips = append(skips, h)
		}
		if blk.resample != nil {
			if h, err = r.conv(h, blk.resample, nil); err != nil {
				return nil, fmt.Errorf("unet down block %d downsampler: %w", i, err)
			}
			skips = append(skips, h)
		}
	}
	// The last skip is also the mid block's input: it must survive it.
	if h, err = r.resnet(h, m.midRes0); err != nil {
		return nil, fmt.Errorf("unet mid block resnet 0: %w", err)
	}
	if h, err = r.transformerThen(h, m.midAttn); err != nil {
		return nil, fmt.Errorf("unet mid block attention: %w", err)
	}
	if h, err = r.resnetThen(h, m.midRes1); err != nil {
		return nil, fmt.Errorf("unet mid block resnet 1: %w", err)
	}
	for i, blk := range m.up {
		for j, res := range blk.resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			hs, ss := h.Dims(), skip.Dims()
			cat, err := r.alloc(hs[0], hs[1], hs[2], hs[3]+ss[3])
			if err != nil {
				return nil, fmt.Errorf("unet up block %d skip %d: %w", i, j, err)
			}
			if err := r.b.Concat(cat, h, skip); err != nil {
				return nil, fmt.Errorf("unet up block %d skip %d: %w", i, j, err)
			}
			r.release(h, skip)
			if h, err = r.resnetThen(cat, res); err != nil {
				return nil, fmt.Errorf("unet up block %d resnet %d: %w", i, j, err)
			}
			if blk.attns[j] != nil {
				if h, err = r.transformerThen(h, blk.attns[j]); err != nil {
					return nil, fmt.Errorf("unet up block %d attention %d: %w", i, j, err)
				}
			}
		}
		if blk.resample != nil {
			// Upsample to the size of the skip connection that comes
			// next: twice this size unless a downsample rounded up.
			next := skips[len(skips)-1].Dims()
			up, err := r.alloc(h.Dims()[0], next[1], next[2], h.Dims()[3])
			if err != nil {
				return nil, fmt.Errorf("unet up block %d upsampler: %w", i, err)
			}
			if err := r.b.ResizeNearest(up, h); err != nil {
				return nil, fmt.Errorf("unet up block %d upsampler: %w", i, err)
			}
			r.release(h)
			if h, err = r.conv(up, blk.resample, nil); err != nil {
				return nil, fmt.Errorf("unet up block %d upsampler: %w", i, err)
			}
			r.release(up)
		}
	}
	g, err := r.alloc(h.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("unet conv_norm_out: %w", err)
	}
	if err := r.b.GroupNorm(g, h, m.cfg.NormGroups, m.normOut.Scale, m.normOut.Shift, resnetEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("unet conv_norm_out: %w", err)
	}
	r.release(h)
	out, err := r.conv(g, m.convOut, nil)
	if err != nil {
		return nil, fmt.Errorf("unet conv_out: %w", err)
	}
	r.release(g)
	r.work.Keep(out)
	return out, nil
}

// run holds what one forward pass shares between blocks.
type run struct {
	b      backend.Backend
	groups int
	ctx    backend.Tensor
	// added is the input of the added embedding, nil without one.
	added backend.Tensor
	// temb is SiLU(time embedding) [N, TimeEmbedDim], what every ResNet
	// block's time_emb_proj reads.
	temb backend.Tensor
	// work holds the activations not yet released, so that a failed pass
	// releases them too.
	work *backend.Scope
}

// alloc allocates an activation the pass releases by itself.
func (r *run) alloc(shape ...int) (backend.Tensor, error) { return r.work.Alloc(shape...) }

// release releases activations of the pass early; its input is left alone.
func (r *run) release(ts ...backend.Tensor) { r.work.Free(ts...) }

func (r *run) timeEmbedding(m *Model, t float64, n int) error {
	ch0 := m.cfg.BlockOutChannels[0]
	sin := TimestepEmbedding(t, ch0)
	rows := make([]float32, 0, n*ch0)
	for range n {
		rows = append(rows, sin...)
	}
	emb, err := r.alloc(n, ch0)
	if err != nil {
		return err
	}
	if err := r.b.Write(emb, rows); err != nil {
		return err
	}
	hidden, err := r.alloc(n, m.cfg.TimeEmbedDim)
	if err != nil {
		return err
	}
	if err := r.b.MatMul(hidden, emb, m.timeIn, backend.Epilogue{Act: backend.SiLU}); err != nil {
		return err
	}
	temb, err := r.alloc(n, m.cfg.TimeEmbedDim)
	if err != nil {
		return err
	}
	r.temb = temb
	// SDXL adds its text_time embedding to the timestep embedding before
	// the shared SiLU.
	var aug backend.Tensor
	if r.added != nil {
		if aug, err = r.addedEmbedding(m, n); err != nil {
			return fmt.Errorf("add_embedding: %w", err)
		}
	}
	if err := r.b.MatMul(r.temb, hidden, m.timeOut, backend.Epilogue{Residual: aug}); err != nil {
		return err
	}
	r.release(emb, hidden)
	if aug != nil {
		r.release(aug)
	}
	return r.b.Activate(r.temb, r.temb, backend.SiLU)
}

func (r *run) conv(x backend.Tensor, w backend.Conv2D, residual backend.Tensor) (backend.Tensor, error) {
	s := w.Stride()
	d := x.Dims()
	h, wd := d[1], d[2]
	ho, wo := (h-1)/s+1, (wd-1)/s+1
	out, err := r.alloc(d[0], ho, wo, w.OutChannels())
	if err != nil {
		return nil, err
	}
	return out, r.b.Conv2D(out, x, w, backend.Epilogue{Residual: residual})
}

// resnetThen runs a ResNet block and releases its input.
func (r *run) resnetThen(x backend.Tensor, res *resnet) (backend.Tensor, error) {
	out, err := r.resnet(x, res)
	r.release(x)
	return out, err
}

func (r *run) resnet(x backend.Tensor, res *resnet) (backend.Tensor, error) {
	g, err := r.alloc(x.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("norm1: %w", err)
	}
	if err := r.b.GroupNorm(g, x, r.groups, res.norm1.Scale, res.norm1.Shift, resnetEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm1: %w", err)
	}
	h, err := r.conv(g, res.conv1, nil)
	if err != nil {
		return nil, fmt.Errorf("conv1: %w", err)
	}
	r.release(g)
	proj, err := r.alloc(x.Dims()[0], res.out)
	if err != nil {
		return nil, fmt.Errorf("time_emb_proj: %w", err)
	}
	if err := r.b.MatMul(proj, r.temb, res.temb, backend.Epilogue{}); err != nil {
		return nil, fmt.Errorf("time_emb_proj: %w", err)
	}
	if err := r.b.AddChannelBias(h, h, proj); err != nil {
		return nil, fmt.Errorf("time embedding: %w", err)
	}
	r.release(proj)
	g2, err := r.alloc(h.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("norm2: %w", err)
	}
	if err := r.b.GroupNorm(g2, h, r.groups, res.norm2.Scale, res.norm2.Shift, resnetEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm2: %w", err)
	}
	r.release(h)
	skip := x
	if res.shortcut != nil {
		if skip, err = r.conv(x, res.shortcut, nil); err != nil {
			return nil, fmt.Errorf("conv_shortcut: %w", err)
		}
	}
	out, err := r.conv(g2, res.conv2, skip)
	if err != nil {
		return nil, fmt.Errorf("conv2: %w", err)
	}
	r.release(g2)
	if skip != x {
		r.release(skip)
	}
	return out, nil
}

// transformerThen runs a spatial transformer and releases its input.
func (r *run) transformerThen(x backend.Tensor, t *transformer) (backend.Tensor, error) {
	out, err := r.transformer(x, t)
	r.release(x)
	return out, err
}

func (r *run) transformer(x backend.Tensor, t *transformer) (backend.Tensor, error) {
	d := x.Dims()
	n, h, w, c := d[0], d[1], d[2], d[3]
	tk := r.ctx.Dims()[1]
	shapes := [][]int{{n, h, w, c}, {n, h * w, c}, {n, h * w, c}, {n, h * w, c}, {n, h * w, c}, {n, h * w, c}, {n, h * w, c}, {n, tk, c}, {n, tk, c}, {n, h * w, 8 * c}, {n, h * w, 4 * c}}
	bufs := make([]backend.Tensor, len(shapes))
	for i, s := range shapes {
		var err error
		if bufs[i], err = r.alloc(s...); err != nil {
			return nil, err
		}
	}
	defer r.release(bufs...)
	g4, s, norm, q, k, v, a, kc, vc, ff, gated := bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], bufs[6], bufs[7], bufs[8], bufs[9], bufs[10]
	if err := r.b.GroupNorm(g4, x, r.groups, t.norm.Scale, t.norm.Shift, transformerEps, backend.None); err != nil {
		return nil, fmt.Errorf("norm: %w", err)
	}
	g, err := r.b.Reshape(g4, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("norm: %w", err)
	}
	if err := r.b.MatMul(s, g, t.projIn, backend.Epilogue{}); err != nil {
		return nil, fmt.Errorf("proj_in: %w", err)
	}
	heads := backend.AttentionParams{Heads: t.heads}
	for i, blk := range t.blocks {
		// s and norm swap roles after each residual add, since an
		// epilogue's residual must not alias its destination.
		steps := []struct {
			name string
			f    func() error
		}{
			{"norm1", func() error { return r.b.LayerNorm(norm, s, blk.norm1.Scale, blk.norm1.Shift, layerNormEps) }},
			{"attn1.to_q", func() error { return r.b.MatMul(q, norm, blk.q1, backend.Epilogue{}) }},
			{"attn1.to_k", func() error { return r.b.MatMul(k, norm, blk.k1, backend.Epilogue{}) }},
			{"attn1.to_v", func() error { return r.b.MatMul(v, norm, blk.v1, backend.Epilogue{}) }},
			{"attn1", func() error { return r.b.Attention(a, q, k, v, heads) }},
			{"attn1.to_out", func() error { return r.b.MatMul(norm, a, blk.o1, backend.Epilogue{Residual: s}) }},
			{"norm2", func() error { return r.b.LayerNorm(s, norm, blk.norm2.Scale, blk.norm2.Shift, layerNormEps) }},
			{"attn2.to_q", func() error { return r.b.MatMul(q, s, blk.q2, backend.Epilogue{}) }},
			{"attn2.to_k", func() error { return r.b.MatMul(kc, r.ctx, blk.k2, backend.Epilogue{}) }},
			{"attn2.to_v", func() error { return r.b.MatMul(vc, r.ctx, blk.v2, backend.Epilogue{}) }},
			{"attn2", func() error { return r.b.Attention(a, q, kc, vc, heads) }},
			{"attn2.to_out", func() error { return r.b.MatMul(s, a, blk.o2, backend.Epilogue{Residual: norm}) }},
			{"norm3", func() error { return r.b.LayerNorm(norm, s, blk.norm3.Scale, blk.norm3.Shift, layerNormEps) }},
			{"ff.net.0", func() error { return r.b.MatMul(ff, norm, blk.ffIn, backend.Epilogue{}) }},
			{"ff geglu", func() error { return r.b.GEGLU(gated, ff) }},
			{"ff.net.2", func() error { return r.b.MatMul(norm, gated, blk.ffOut, backend.Epilogue{Residual: s}) }},
		}
		for _, st := range steps {
			if err := st.f(); err != nil {
				return nil, fmt.Errorf("transformer block %d %s: %w", i, st.name, err)
			}
		}
		s, norm = norm, s
	}
	out, err := r.alloc(n, h, w, c)
	if err != nil {
		return nil, fmt.Errorf("proj_out: %w", err)
	}
	xs, err := r.b.Reshape(x, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("proj_out: %w", err)
	}
	o, err := r.b.Reshape(out, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("proj_out: %w", err)
	}
	if err := r.b.MatMul(o, s, t.projOut, backend.Epilogue{Residual: xs}); err != nil {
		return nil, fmt.Errorf("proj_out: %w", err)
	}
	return out, nil
}
