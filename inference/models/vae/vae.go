package vae

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// normEps is the epsilon of every group norm in the autoencoder.
const normEps = 1e-6

// Decoder is a loaded VAE decoder.
type Decoder struct {
	cfg              checkpoint.VAEConfig
	b                backend.Backend
	postQuant        backend.Linear
	convIn, convOut  backend.Conv2D
	midRes0, midRes1 *resnet
	attnNorm         models.Norm
	q, k, v, o       backend.Linear
	up               []upBlock
	normOut          models.Norm
	bytes            int64
}

type upBlock struct {
	resnets  []*resnet
	upsample backend.Conv2D
}

type resnet struct {
	norm1, norm2 models.Norm
	conv1, conv2 backend.Conv2D
	shortcut     backend.Conv2D
}

// New loads the decoder (and post_quant_conv) from src, whose names are
// the diffusers ones ("decoder.mid_block...").
func New(b backend.Backend, src models.Source, cfg checkpoint.VAEConfig) (*Decoder, error) {
	n := len(cfg.BlockOutChannels)
	if n == 0 || cfg.LayersPerBlock <= 0 || cfg.NormGroups <= 0 || cfg.LatentChannels <= 0 || cfg.OutChannels <= 0 || cfg.ScalingFactor <= 0 {
		return nil, fmt.Errorf("vae config %+v: expected positive sizes and scaling factor", cfg)
	}
	for i, ch := range cfg.BlockOutChannels {
		if ch <= 0 || ch%cfg.NormGroups != 0 {
			return nil, fmt.Errorf("vae config BlockOutChannels[%d] %d: expected a positive multiple of NormGroups %d", i, ch, cfg.NormGroups)
		}
	}
	d := &Decoder{cfg: cfg, b: b}
	root := models.NewLoader(b, src)
	lc, last := cfg.LatentChannels, cfg.BlockOutChannels[n-1]
	// post_quant_conv is 1×1, which on NHWC data is a plain matrix multiply.
	d.postQuant = root.Linear("post_quant_conv", lc, lc, true)
	l := root.With("decoder.")
	d.convIn = l.Conv("conv_in", last, lc, 3, 1)
	d.midRes0 = loadResnet(l.With("mid_block.resnets.0."), last, last)
	a := l.With("mid_block.attentions.0.")
	d.attnNorm = a.Norm("group_norm", last)
	d.q = a.Linear("to_q", last, last, true)
	d.k = a.Linear("to_k", last, last, true)
	d.v = a.Linear("to_v", last, last, true)
	d.o = a.Linear("to_out.0", last, last, true)
	d.midRes1 = loadResnet(l.With("mid_block.resnets.1."), last, last)
	in := last
	for i := range n {
		ch := cfg.BlockOutChannels[n-1-i]
		var blk upBlock
		for j := 0; j <= cfg.LayersPerBlock; j++ {
			blk.resnets = append(blk.resnets, loadResnet(l.With(fmt.Sprintf("up_blocks.%d.resnets.%d.", i, j)), in, ch))
			in = ch
		}
		if i < n-1 {
			blk.upsample = l.Conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), ch, ch, 3, 1)
		}
		d.up = append(d.up, blk)
	}
	d.normOut = l.Norm("conv_norm_out", cfg.BlockOutChannels[0])
	d.convOut = l.Conv("conv_out", cfg.OutChannels, cfg.BlockOutChannels[0], 3, 1)
	if err := root.Err(); err != nil {
		return nil, err
	}
	d.bytes = root.PackedBytes()
	return d, nil
}

func loadResnet(l *models.Loader, in, out int) *resnet {
	r := &resnet{
		norm1: l.Norm("norm1", in),
		conv1: l.Conv("conv1", out, in, 3, 1),
		norm2: l.Norm("norm2", out),
		conv2: l.Conv("conv2", out, out, 3, 1),
	}
	if in != out {
		r.shortcut = l.Conv("conv_shortcut", out, in, 1, 1)
	}
	return r
}

// PackedBytes estimates the memory the loaded weights occupy.
func (d *Decoder) PackedBytes() int64 { return d.bytes }

// Decode turns latents [N, h, w, LatentChannels] (as the sampler leaves
// them, before scaling) into an image [N, 8h, 8w, OutChannels] with values
// in [0, 1] (for three block levels of upsampling; 2^(levels-1) in general).
func (d *Decoder) Decode(latents *tensor.Tensor) (*tensor.Tensor, error) {
	if latents.Rank() != 4 || latents.Shape[3] != d.cfg.LatentChannels {
		return nil, fmt.Errorf("vae latents: shape %v, expected [N, h, w, %d]", latents.Shape, d.cfg.LatentChannels)
	}
	z := latents.Clone()
	inv := float32(1 / d.cfg.ScalingFactor)
	for i := range z.Data {
		z.Data[i] *= inv
	}
	pq, _ := tensor.New(z.Shape...)
	if err := d.b.MatMul(pq, z, d.postQuant, backend.Epilogue{}); err != nil {
		return nil, fmt.Errorf("vae post_quant_conv: %w", err)
	}
	h, err := d.conv(pq, d.convIn, nil)
	if err != nil {
		return nil, fmt.Errorf("vae conv_in: %w", err)
	}
	if h, err = d.resnet(h, d.midRes0); err != nil {
		return nil, fmt.Errorf("vae mid block resnet 0: %w", err)
	}
	if h, err = d.attention(h); err != nil {
		return nil, fmt.Errorf("vae mid block attention: %w", err)
	}
	if h, err = d.resnet(h, d.midRes1); err != nil {
		return nil, fmt.Errorf("vae mid block resnet 1: %w", err)
	}
	for i, blk := range d.up {
		for j, r := range blk.resnets {
			if h, err = d.resnet(h, r); err != nil {
				return nil, fmt.Errorf("vae up block %d resnet %d: %w", i, j, err)
			}
		}
		if blk.upsample != nil {
			u, _ := tensor.New(h.Shape[0], 2*h.Shape[1], 2*h.Shape[2], h.Shape[3])
			if err := d.b.Upsample2x(u, h); err != nil {
				return nil, fmt.Errorf("vae up block %d upsample: %w", i, err)
			}
			if h, err = d.conv(u, blk.upsample, nil); err != nil {
				return nil, fmt.Errorf("vae up block %d upsampler: %w", i, err)
			}
		}
	}
	g, _ := tensor.New(h.Shape...)
	if err := d.b.GroupNorm(g, h, d.cfg.NormGroups, d.normOut.Scale, d.normOut.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("vae conv_norm_out: %w", err)
	}
	img, err := d.conv(g, d.convOut, nil)
	if err != nil {
		return nil, fmt.Errorf("vae conv_out: %w", err)
	}
	for i, v := range img.Data {
		img.Data[i] = min(max(v*0.5+0.5, 0), 1)
	}
	return img, nil
}

func (d *Decoder) conv(x *tensor.Tensor, w backend.Conv2D, residual *tensor.Tensor) (*tensor.Tensor, error) {
	out, err := tensor.New(x.Shape[0], x.Shape[1], x.Shape[2], w.OutChannels())
	if err != nil {
		return nil, err
	}
	return out, d.b.Conv2D(out, x, w, backend.Epilogue{Residual: residual})
}

func (d *Decoder) resnet(x *tensor.Tensor, r *resnet) (*tensor.Tensor, error) {
	g, _ := tensor.New(x.Shape...)
	if err := d.b.GroupNorm(g, x, d.cfg.NormGroups, r.norm1.Scale, r.norm1.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm1: %w", err)
	}
	h, err := d.conv(g, r.conv1, nil)
	if err != nil {
		return nil, fmt.Errorf("conv1: %w", err)
	}
	// Reuse norm1's buffer for norm2 when the channel count is unchanged.
	g2 := &tensor.Tensor{Shape: h.Shape, Data: g.Data}
	if len(g.Data) != len(h.Data) {
		g2, _ = tensor.New(h.Shape...)
	}
	if err := d.b.GroupNorm(g2, h, d.cfg.NormGroups, r.norm2.Scale, r.norm2.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm2: %w", err)
	}
	skip := x
	if r.shortcut != nil {
		if skip, err = d.conv(x, r.shortcut, nil); err != nil {
			return nil, fmt.Errorf("conv_shortcut: %w", err)
		}
	}
	// h is no longer needed: conv2 writes into it (it is neither input
	// nor residual), which keeps the full-resolution blocks' memory down.
	if err := d.b.Conv2D(h, g2, r.conv2, backend.Epilogue{Residual: skip}); err != nil {
		return nil, fmt.Errorf("conv2: %w", err)
	}
	return h, nil
}

func (d *Decoder) attention(x *tensor.Tensor) (*tensor.Tensor, error) {
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	g, _ := tensor.New(x.Shape...)
	if err := d.b.GroupNorm(g, x, d.cfg.NormGroups, d.attnNorm.Scale, d.attnNorm.Shift, normEps, backend.None); err != nil {
		return nil, fmt.Errorf("group_norm: %w", err)
	}
	seq, _ := g.Reshape(n, h*w, c)
	q, _ := tensor.New(n, h*w, c)
	k, _ := tensor.New(n, h*w, c)
	v, _ := tensor.New(n, h*w, c)
	for _, p := range []struct {
		dst *tensor.Tensor
		w   backend.Linear
	}{{q, d.q}, {k, d.k}, {v, d.v}} {
		if err := d.b.MatMul(p.dst, seq, p.w, backend.Epilogue{}); err != nil {
			return nil, err
		}
	}
	a := seq // the normalised input is no longer needed
	if err := d.b.Attention(a, q, k, v, backend.AttentionParams{Heads: 1}); err != nil {
		return nil, err
	}
	out, _ := tensor.New(x.Shape...)
	o, _ := out.Reshape(n, h*w, c)
	xs, _ := x.Reshape(n, h*w, c)
	if err := d.b.MatMul(o, a, d.o, backend.Epilogue{Residual: xs}); err != nil {
		return nil, fmt.Errorf("to_out: %w", err)
	}
	return out, nil
}
