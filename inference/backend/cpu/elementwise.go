package cpu

import (
	"fmt"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// elementChunk is the smallest slice of an element-wise loop worth handing
// to another worker.
const elementChunk = 1 << 14

// geglu implements backend.Backend's GEGLU on host tensors.
func (b *Backend) geglu(dst, x *tensor.Tensor) error {
	if err := requireRank("geglu x", x, 0); err != nil {
		return err
	}
	c := x.Dim(-1)
	if c%2 != 0 {
		return fmt.Errorf("geglu x: last dimension %d is odd, expected value and gate halves", c)
	}
	f := c / 2
	if err := requireShape("geglu dst", dst, withLast(x.Shape, f)...); err != nil {
		return err
	}
	if err := distinct("geglu dst", dst, "x", x); err != nil {
		return err
	}
	b.parallelRanges(x.Rows(), max(1, elementChunk/max(c, 1)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			value := x.Data[r*c : r*c+f]
			gate := x.Data[r*c+f : (r+1)*c]
			out := dst.Data[r*f : (r+1)*f]
			geluSlice(b.kernel, out, gate)
			for j, v := range value {
				out[j] *= v
			}
		}
	})
	return nil
}

// activate implements backend.Backend's Activate on host tensors; dst may be x.
func (b *Backend) activate(dst, x *tensor.Tensor, act backend.Activation) error {
	if err := requireRank("activate x", x, 0); err != nil {
		return err
	}
	if err := requireShape("activate dst", dst, x.Shape...); err != nil {
		return err
	}
	if act < backend.None || act > backend.QuickGELU {
		return fmt.Errorf("activate act: unknown %v", act)
	}
	f := activationFunc(b.kernel, act)
	if f == nil {
		copy(dst.Data, x.Data)
		return nil
	}
	b.parallelRanges(len(x.Data), elementChunk, func(_, lo, hi int) {
		f(dst.Data[lo:hi], x.Data[lo:hi])
	})
	return nil
}

// upsample2x implements backend.Backend's Upsample2x on host tensors.
func (b *Backend) upsample2x(dst, x *tensor.Tensor) error {
	if err := requireRank("resize x", x, 4); err != nil {
		return err
	}
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if err := requireShape("resize dst", dst, n, 2*h, 2*w, c); err != nil {
		return err
	}
	if err := distinct("resize dst", dst, "x", x); err != nil {
		return err
	}
	b.parallelRanges(n*h, 4, func(_, lo, hi int) {
		for row := lo; row < hi; row++ {
			src := x.Data[row*w*c : (row+1)*w*c]
			top := dst.Data[2*row*2*w*c : (2*row+1)*2*w*c]
			for xi := 0; xi < w; xi++ {
				px := src[xi*c : (xi+1)*c]
				copy(top[2*xi*c:], px)
				copy(top[(2*xi+1)*c:], px)
			}
			copy(dst.Data[(2*row+1)*2*w*c:(2*row+2)*2*w*c], top)
		}
	})
	return nil
}

// concat implements backend.Backend's Concat on host tensors.
func (b *Backend) concat(dst, a, bt *tensor.Tensor) error {
	if err := requireRank("concat a", a, 0); err != nil {
		return err
	}
	if err := requireRank("concat b", bt, len(a.Shape)); err != nil {
		return err
	}
	for i := 0; i < len(a.Shape)-1; i++ {
		if a.Shape[i] != bt.Shape[i] {
			return fmt.Errorf("concat b: shape %v does not match a %v outside the last dimension", bt.Shape, a.Shape)
		}
	}
	ca, cb := a.Dim(-1), bt.Dim(-1)
	if err := requireShape("concat dst", dst, withLast(a.Shape, ca+cb)...); err != nil {
		return err
	}
	if err := distinct("concat dst", dst, "a", a); err != nil {
		return err
	}
	if err := distinct("concat dst", dst, "b", bt); err != nil {
		return err
	}
	cd := ca + cb
	b.parallelRanges(a.Rows(), max(1, elementChunk/max(cd, 1)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(dst.Data[r*cd:r*cd+ca], a.Data[r*ca:(r+1)*ca])
			copy(dst.Data[r*cd+ca:(r+1)*cd], bt.Data[r*cb:(r+1)*cb])
		}
	})
	return nil
}

// embedding implements backend.Backend's Embedding on host tensors.
func (b *Backend) embedding(dst, table *tensor.Tensor, ids []int) error {
	if err := requireRank("embedding table", table, 2); err != nil {
		return err
	}
	vocab, d := table.Shape[0], table.Shape[1]
	if err := requireRank("embedding dst", dst, 0); err != nil {
		return err
	}
	if dst.Dim(-1) != d || len(dst.Data) != len(ids)*d {
		return fmt.Errorf("embedding dst: shape %v, expected %d rows of %d", dst.Shape, len(ids), d)
	}
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return fmt.Errorf("embedding ids[%d]: %d outside the table's %d rows", i, id, vocab)
		}
	}
	for i, id := range ids {
		copy(dst.Data[i*d:(i+1)*d], table.Data[id*d:(id+1)*d])
	}
	return nil
}

// axpby implements backend.Backend's Axpby on host tensors; dst may alias x or y.
func (b *Backend) axpby(dst *tensor.Tensor, a float32, x *tensor.Tensor, bc float32, y *tensor.Tensor) error {
	if err := requireRank("axpby x", x, 0); err != nil {
		return err
	}
	if err := requireShape("axpby y", y, x.Shape...); err != nil {
		return err
	}
	if err := requireShape("axpby dst", dst, x.Shape...); err != nil {
		return err
	}
	b.parallelRanges(len(x.Data), elementChunk, func(_, lo, hi int) {
		out, xs, ys := dst.Data[lo:hi], x.Data[lo:hi], y.Data[lo:hi]
		for i := range out {
			out[i] = a*xs[i] + bc*ys[i]
		}
	})
	return nil
}

// addChannelBias implements backend.Backend's AddChannelBias on host tensors; dst may alias x.
func (b *Backend) addChannelBias(dst, x, bias *tensor.Tensor) error {
	if err := requireRank("channel bias x", x, 0); err != nil {
		return err
	}
	if len(x.Shape) < 2 {
		return fmt.Errorf("channel bias x: shape %v, expected [N, ..., C]", x.Shape)
	}
	n, c := x.Shape[0], x.Dim(-1)
	if err := requireShape("channel bias bias", bias, n, c); err != nil {
		return err
	}
	if err := requireShape("channel bias dst", dst, x.Shape...); err != nil {
		return err
	}
	if n == 0 || c == 0 {
		return nil
	}
	perItem := len(x.Data) / (n * c)
	b.parallelRanges(n*perItem, max(1, elementChunk/c), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			bv := bias.Data[(r/perItem)*c : (r/perItem+1)*c]
			src, out := x.Data[r*c:(r+1)*c], dst.Data[r*c:(r+1)*c]
			for j, v := range src {
				out[j] = v + bv[j]
			}
		}
	})
	return nil
}

// resizeNearest implements backend.Backend's ResizeNearest on host tensors
// for any output size, which the UNet needs where a skip connection's
// size is odd and a plain 2× upsample would overshoot it.
func (b *Backend) resizeNearest(dst, x *tensor.Tensor) error {
	if err := requireRank("resize x", x, 4); err != nil {
		return err
	}
	if err := requireRank("resize dst", dst, 4); err != nil {
		return err
	}
	n, h, w, c := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if dst.Shape[0] != n || dst.Shape[3] != c {
		return fmt.Errorf("resize dst: shape %v, expected [%d, Ho, Wo, %d] like x %v", dst.Shape, n, c, x.Shape)
	}
	if err := distinct("resize dst", dst, "x", x); err != nil {
		return err
	}
	ho, wo := dst.Shape[1], dst.Shape[2]
	if ho*wo*n*c == 0 {
		return nil
	}
	if h == 0 || w == 0 {
		return fmt.Errorf("resize x: shape %v is empty but dst %v is not", x.Shape, dst.Shape)
	}
	sy, sx := float32(h)/float32(ho), float32(w)/float32(wo)
	b.parallelRanges(n*ho, 4, func(_, lo, hi int) {
		for row := lo; row < hi; row++ {
			bi, y := row/ho, row%ho
			iy := min(int(float32(y)*sy), h-1)
			for xo := range wo {
				ix := min(int(float32(xo)*sx), w-1)
				src := x.Data[((bi*h+iy)*w+ix)*c : ((bi*h+iy)*w+ix+1)*c]
				copy(dst.Data[((bi*ho+y)*wo+xo)*c:((bi*ho+y)*wo+xo+1)*c], src)
			}
		}
	})
	return nil
}
