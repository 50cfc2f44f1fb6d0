package models

import (
	"fmt"
)

// NCHWToNHWC copies src, laid out [N, C, H, W] as PyTorch stores images and
// latents, into dst laid out [N, H, W, C] as the backend computes.
func NCHWToNHWC(dst, src []float32, n, c, h, w int) error {
	if len(src) != n*c*h*w || len(dst) != len(src) {
		return fmt.Errorf("nchw to nhwc: %d and %d values for shape [%d %d %d %d]", len(src), len(dst), n, c, h, w)
	}
	hw := h * w
	for b := range n {
		for ch := range c {
			plane := src[(b*c+ch)*hw : (b*c+ch+1)*hw]
			out := dst[b*hw*c:]
			for p, v := range plane {
				out[p*c+ch] = v
			}
		}
	}
	return nil
}

// NHWCToNCHW is the inverse of NCHWToNHWC.
func NHWCToNCHW(dst, src []float32, n, h, w, c int) error {
	if len(src) != n*c*h*w || len(dst) != len(src) {
		return fmt.Errorf("nhwc to nchw: %d and %d values for shape [%d %d %d %d]", len(src), len(dst), n, h, w, c)
	}
	hw := h * w
	for b := range n {
		in := src[b*hw*c : (b+1)*hw*c]
		for ch := range c {
			plane := dst[(b*c+ch)*hw : (b*c+ch+1)*hw]
			for p := range plane {
				plane[p] = in[p*c+ch]
			}
		}
	}
	return nil
}
