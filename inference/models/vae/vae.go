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
	// weights unloads what the constructor loaded.
	weights *models.Loader
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
		root.Unload()
		return nil, err
	}
	d.weights = root
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

// Release frees the network's weights on its backend; the network must
// not be used afterwards.
func (d *Decoder) Release() {
	if d.weights != nil {
		d.weights.Unload()
		d.weights = nil
	}
}

// PackedBytes is the memory the loaded weights occupy in the backend.
func (d *Decoder) PackedBytes() int64 { return d.bytes }

// Decode turns latents [N, h, w, LatentChannels] (as the sampler leaves
// them, before scaling; a tensor of the decoder's backend) into an image
// [N, 8h, 8w, OutChannels] with values in [0, 1] (for three block levels
// of upsampling; 2^(levels-1) in general), read back to the host.
func (d *Decoder) Decode(latents backend.Tensor) (*tensor.Tensor, error) {
	ls := latents.Dims()
	if len(ls) != 4 || ls[3] != d.cfg.LatentChannels {
		return nil, fmt.Errorf("vae latents: shape %v, expected [N, h, w, %d]", ls, d.cfg.LatentChannels)
	}
	r := &pass{b: d.b, work: backend.NewScope(d.b)}
	defer r.work.Release()
	img, err := d.decode(r, latents)
	if err != nil {
		return nil, err
	}
	out, err := tensor.New(img.Dims()...)
	if err != nil {
		return nil, err
	}
	if err := d.b.Read(out.Data, img); err != nil {
		return nil, fmt.Errorf("vae image: %w", err)
	}
	for i, v := range out.Data {
		out.Data[i] = min(max(v*0.5+0.5, 0), 1)
	}
	return out, nil
}

func (d *Decoder) decode(r *pass, latents backend.Tensor) (backend.Tensor, error) {
	z, err := r.alloc(latents.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("vae latents: %w", err)
	}
	inv := float32(1 / d.cfg.ScalingFactor)
	if err := d.b.Axpby(z, inv, latents, 0, latents); err != nil {
		return nil, fmt.Errorf("vae latents: %w", err)
	}
	pq, err := r.alloc(z.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("vae post_quant_conv: %w", err)
	}
	if err := d.b.MatMul(pq, z, d.postQuant, backend.Epilogue{}); err != nil {
		return nil, fmt.Errorf("vae post_quant_conv: %w", err)
	}
	r.release(z)
	h, err := r.conv(pq, d.convIn, nil)
	if err != nil {
		return nil, fmt.Errorf("vae conv_in: %w", err)
	}
	r.release(pq)
	if h, err = d.resnet(r, h, d.midRes0); err != nil {
		return nil, fmt.Errorf("vae mid block resnet 0: %w", err)
	}
	if h, err = d.attention(r, h); err != nil {
		return nil, fmt.Errorf("vae mid block attention: %w", err)
	}
	if h, err = d.resnet(r, h, d.midRes1); err != nil {
		return nil, fmt.Errorf("vae mid block resnet 1: %w", err)
	}
	for i, blk := range d.up {
		for j, res := range blk.resnets {
			if h, err = d.resnet(r, h, res); err != nil {
				return nil, fmt.Errorf("vae up block %d resnet %d: %w", i, j, err)
			}
		}
		if blk.upsample != nil {
			hs := h.Dims()
			u, err := r.alloc(hs[0], 2*hs[1], 2*hs[2], hs[3])
			if err != nil {
				return nil, fmt.Errorf("vae up block %d upsample: %w", i, err)
			}
			if err := d.b.ResizeNearest(u, h); err != nil {
				return nil, fmt.Errorf("vae up block %d upsample: %w", i, err)
			}
			r.release(h)
			if h, err = r.conv(u, blk.upsample, nil); err != nil {
				return nil, fmt.Errorf("vae up block %d upsampler: %w", i, err)
			}
			r.release(u)
		}
	}
	g, err := r.alloc(h.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("vae conv_norm_out: %w", err)
	}
	if err := d.b.GroupNorm(g, h, d.cfg.NormGroups, d.normOut.Scale, d.normOut.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("vae conv_norm_out: %w", err)
	}
	r.release(h)
	img, err := r.conv(g, d.convOut, nil)
	if err != nil {
		return nil, fmt.Errorf("vae conv_out: %w", err)
	}
	r.release(g)
	return img, nil
}

// pass tracks the activations of one decode, each released as soon as
// its last reader has been called and the rest at the end.
type pass struct {
	b    backend.Backend
	work *backend.Scope
}

func (r *pass) alloc(shape ...int) (backend.Tensor, error) { return r.work.Alloc(shape...) }

// release releases activations early; the caller's latents are left alone.
func (r *pass) release(ts ...backend.Tensor) { r.work.Free(ts...) }

func (r *pass) conv(x backend.Tensor, w backend.Conv2D, residual backend.Tensor) (backend.Tensor, error) {
	d := x.Dims()
	out, err := r.alloc(d[0], d[1], d[2], w.OutChannels())
	if err != nil {
		return nil, err
	}
	return out, r.b.Conv2D(out, x, w, backend.Epilogue{Residual: residual})
}

// resnet runs a ResNet block on x and releases x.
func (d *Decoder) resnet(r *pass, x backend.Tensor, res *resnet) (backend.Tensor, error) {
	g, err := r.alloc(x.Dims()...)
	if err != nil {
		return nil, fmt.Errorf("norm1: %w", err)
	}
	if err := d.b.GroupNorm(g, x, d.cfg.NormGroups, res.norm1.Scale, res.norm1.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm1: %w", err)
	}
	h, err := r.conv(g, res.conv1, nil)
	if err != nil {
		return nil, fmt.Errorf("conv1: %w", err)
	}
	// Reuse norm1's buffer for norm2 when the channel count is unchanged.
	g2 := g
	if backend.Len(g) != backend.Len(h) {
		r.release(g)
		if g2, err = r.alloc(h.Dims()...); err != nil {
			return nil, fmt.Errorf("norm2: %w", err)
		}
	} else if g2, err = d.b.Reshape(g, h.Dims()...); err != nil {
		return nil, fmt.Errorf("norm2: %w", err)
	}
	if err := d.b.GroupNorm(g2, h, d.cfg.NormGroups, res.norm2.Scale, res.norm2.Shift, normEps, backend.SiLU); err != nil {
		return nil, fmt.Errorf("norm2: %w", err)
	}
	skip := x
	if res.shortcut != nil {
		if skip, err = r.conv(x, res.shortcut, nil); err != nil {
			return nil, fmt.Errorf("conv_shortcut: %w", err)
		}
		r.release(x)
	}
	// h is no longer needed: conv2 writes into it (it is neither input
	// nor residual), which keeps the full-resolution blocks' memory down.
	if err := d.b.Conv2D(h, g2, res.conv2, backend.Epilogue{Residual: skip}); err != nil {
		return nil, fmt.Errorf("conv2: %w", err)
	}
	r.release(g, g2, skip)
	return h, nil
}

// attention runs the mid block's self-attention on x and releases x.
func (d *Decoder) attention(r *pass, x backend.Tensor) (backend.Tensor, error) {
	xd := x.Dims()
	n, h, w, c := xd[0], xd[1], xd[2], xd[3]
	g, err := r.alloc(xd...)
	if err != nil {
		return nil, fmt.Errorf("group_norm: %w", err)
	}
	if err := d.b.GroupNorm(g, x, d.cfg.NormGroups, d.attnNorm.Scale, d.attnNorm.Shift, normEps, backend.None); err != nil {
		return nil, fmt.Errorf("group_norm: %w", err)
	}
	seq, err := d.b.Reshape(g, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("group_norm: %w", err)
	}
	var qkv [3]backend.Tensor
	for i, lin := range []backend.Linear{d.q, d.k, d.v} {
		if qkv[i], err = r.alloc(n, h*w, c); err != nil {
			return nil, err
		}
		if err := d.b.MatMul(qkv[i], seq, lin, backend.Epilogue{}); err != nil {
			return nil, err
		}
	}
	a := seq // the normalised input is no longer needed
	if err := d.b.Attention(a, qkv[0], qkv[1], qkv[2], backend.AttentionParams{Heads: 1}); err != nil {
		return nil, err
	}
	r.release(qkv[:]...)
	out, err := r.alloc(xd...)
	if err != nil {
		return nil, fmt.Errorf("to_out: %w", err)
	}
	o, err := d.b.Reshape(out, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("to_out: %w", err)
	}
	xs, err := d.b.Reshape(x, n, h*w, c)
	if err != nil {
		return nil, fmt.Errorf("to_out: %w", err)
	}
	if err := d.b.MatMul(o, a, d.o, backend.Epilogue{Residual: xs}); err != nil {
		return nil, fmt.Errorf("to_out: %w", err)
	}
	r.release(g, x)
	return out, nil
}
