package unet

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
)

// SizeConditioning is SDXL's micro-conditioning: the size the image is
// meant to have been before cropping, the crop's top-left corner and the
// target size, in pixels. The text-to-image default is original = target =
// the output size with no crop.
type SizeConditioning struct {
	OriginalHeight, OriginalWidth int
	CropTop, CropLeft             int
	TargetHeight, TargetWidth     int
}

// DefaultSizeConditioning is the conditioning for an image generated at
// width × height without cropping.
func DefaultSizeConditioning(width, height int) SizeConditioning {
	return SizeConditioning{OriginalHeight: height, OriginalWidth: width, TargetHeight: height, TargetWidth: width}
}

// values are the six time ids in the order the UNet was trained with.
func (s SizeConditioning) values() [6]float64 {
	return [6]float64{float64(s.OriginalHeight), float64(s.OriginalWidth), float64(s.CropTop), float64(s.CropLeft), float64(s.TargetHeight), float64(s.TargetWidth)}
}

// AddedConditioning builds the input of SDXL's text_time embedding for
// every row of pooled [N, P]: the pooled text embedding followed by the
// sinusoidal features of the six size values, (AdditionEmbedDim - P)/6
// each, as the timestep's, for a UNet of config cfg. It returns
// [N, AdditionEmbedDim], a tensor of b that the caller releases. It needs
// only the config, so that the text encoders and the UNet need not be
// loaded together.
func AddedConditioning(b backend.Backend, cfg checkpoint.UNetConfig, pooled backend.Tensor, sizes SizeConditioning) (backend.Tensor, error) {
	if cfg.AdditionEmbedDim == 0 {
		return nil, fmt.Errorf("unet added embedding: this UNet has none")
	}
	ps := pooled.Dims()
	if len(ps) != 2 || ps[1] <= 0 || ps[1] >= cfg.AdditionEmbedDim {
		return nil, fmt.Errorf("unet added embedding: pooled text embedding shape %v, expected [N, P] with P under %d", ps, cfg.AdditionEmbedDim)
	}
	n, p := ps[0], ps[1]
	rest := cfg.AdditionEmbedDim - p
	if rest%6 != 0 || (rest/6)%2 != 0 {
		return nil, fmt.Errorf("unet added embedding: %d values for a pooled width of %d leave %d for six size values, expected an even width each", cfg.AdditionEmbedDim, p, rest)
	}
	width := rest / 6
	feat := make([]float32, 0, n*rest)
	for range n {
		for _, v := range sizes.values() {
			feat = append(feat, TimestepEmbedding(v, width)...)
		}
	}
	work := backend.NewScope(b)
	defer work.Release()
	f, err := work.Upload(feat, n, rest)
	if err != nil {
		return nil, fmt.Errorf("unet added embedding: %w", err)
	}
	out, err := work.Alloc(n, cfg.AdditionEmbedDim)
	if err != nil {
		return nil, fmt.Errorf("unet added embedding: %w", err)
	}
	if err := b.Concat(out, pooled, f); err != nil {
		return nil, fmt.Errorf("unet added embedding: %w", err)
	}
	work.Keep(out)
	return out, nil
}

// addedEmbedding is add_embedding(added): linear, SiLU, linear, [n, TimeEmbedDim].
func (r *run) addedEmbedding(m *Model, n int) (backend.Tensor, error) {
	hidden, err := r.alloc(n, m.cfg.TimeEmbedDim)
	if err != nil {
		return nil, err
	}
	if err := r.b.MatMul(hidden, r.added, m.addIn, backend.Epilogue{Act: backend.SiLU}); err != nil {
		return nil, err
	}
	aug, err := r.alloc(n, m.cfg.TimeEmbedDim)
	if err != nil {
		return nil, err
	}
	if err := r.b.MatMul(aug, hidden, m.addOut, backend.Epilogue{}); err != nil {
		return nil, err
	}
	r.release(hidden)
	return aug, nil
}
