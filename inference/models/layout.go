package models

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/tensor"
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

// ResizeNearest writes dst [N, Ho, Wo, C] from src [N, H, W, C] by nearest
// neighbour with PyTorch's index rule (source index floor(i·H/Ho)). The
// UNet needs it where a skip connection's size is odd and a plain 2×
// upsample would overshoot it.
func ResizeNearest(dst, src *tensor.Tensor) error {
	if len(src.Shape) != 4 || len(dst.Shape) != 4 || src.Shape[0] != dst.Shape[0] || src.Shape[3] != dst.Shape[3] {
		return fmt.Errorf("resize nearest: shapes %v to %v, expected [N, H, W, C] with equal N and C", src.Shape, dst.Shape)
	}
	n, h, w, c := src.Shape[0], src.Shape[1], src.Shape[2], src.Shape[3]
	ho, wo := dst.Shape[1], dst.Shape[2]
	sy, sx := float32(h)/float32(ho), float32(w)/float32(wo)
	for b := range n {
		for y := range ho {
			iy := min(int(float32(y)*sy), h-1)
			for x := range wo {
				ix := min(int(float32(x)*sx), w-1)
				copy(dst.Data[((b*ho+y)*wo+x)*c:((b*ho+y)*wo+x+1)*c], src.Data[((b*h+iy)*w+ix)*c:((b*h+iy)*w+ix+1)*c])
			}
		}
	}
	return nil
}
