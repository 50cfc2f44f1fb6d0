package vulkan

import (
	"fmt"
	"math"
	"strings"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// The kernels' host side: argument checks, then one recorded dispatch.
// Nothing here waits for the device.

const elementwiseGroups = 65535 // workgroup-count limit every device meets

func groupsFor(n int, per int) uint32 {
	g := (n + per - 1) / per
	return uint32(min(max(g, 1), elementwiseGroups))
}

func (d *Device) live(name string, ts ...*Tensor) error {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if t.buf == nil {
			return fmt.Errorf("%s: tensor %v was released", name, t.dims)
		}
		if t.d != d {
			return fmt.Errorf("%s: tensor %v belongs to another device", name, t.dims)
		}
	}
	return nil
}

func want(op, arg string, t *Tensor, dtype tensor.DType) error {
	if t.dtype != dtype {
		return fmt.Errorf("%s: %s is %v, want %v", op, arg, t.dtype, dtype)
	}
	return nil
}

func sameDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// activations checks that the activations ts (named by the
// space-separated names; nil ones are skipped) share dst's dtype, F16 or
// F32, and returns it: it selects the kernel variant.
func activations(op string, dst *Tensor, names string, ts ...*Tensor) (tensor.DType, error) {
	if dst.weight || (dst.dtype != tensor.F16 && dst.dtype != tensor.F32) {
		return 0, fmt.Errorf("%s: dst %v is a weight or %v, want an F16 or F32 activation", op, dst.dims, dst.dtype)
	}
	name := strings.Fields(names)
	for i, t := range ts {
		if t != nil && t.weight {
			return 0, fmt.Errorf("%s: %s %v is a weight, want an activation", op, name[i], t.dims)
		}
		if t != nil && t.dtype != dst.dtype {
			return 0, fmt.Errorf("%s: %s %v is %v but dst is %v: the activations of one operation share a dtype", op, name[i], t.dims, t.dtype, dst.dtype)
		}
	}
	return dst.dtype, nil
}

// run records one dispatch of kernel name in the variant for activations
// of dtype act. A dispatch touching a buffer larger than the binding
// limit uses the device-address variant, which reaches every buffer
// through its address in the push constants.
//
// Why addresses rather than splitting large tensors into bands bound at
// descriptor offsets: bufferDeviceAddress is core and required in Vulkan
// 1.3 (which the backend requires), so NVIDIA, RADV and lavapipe all have
// it, and with it every kernel handles any size with one code path,
// whereas bands would need their own logic per kernel (halo rows for 3×3
// convolution, cross-band reductions for group norm, row maps for resize
// and concat) that only lavapipe's 128 MiB range would ever run. Tensors
// within the range keep descriptors, the form the validation layers
// check buffer ranges of and the one these kernels were first proven in;
// the limit that remains, maxMemoryAllocationSize, is checked when the
// buffer is allocated.
func (d *Device) run(name string, act tensor.DType, reads, writes []*Buffer, push []uint32, groups [3]uint32) error {
	v := variant{f32: act == tensor.F32}
	oversized := false
	for _, b := range append(append([]*Buffer(nil), reads...), writes...) {
		oversized = oversized || b.size > d.bindLimit
	}
	v.bda = oversized
	if oversized {
		d.oversized++
	}
	k, err := d.kernels.get(name, v)
	if err != nil {
		return err
	}
	r, err := d.recorder()
	if err != nil {
		return err
	}
	return r.dispatch(k, reads, writes, push, groups)
}

func f32(v float32) uint32 { return math.Float32bits(v) }

// epilogueFlags packs the activation, bias and residual bits of gemm.glsl.
func epilogueFlags(act backend.Activation, bias, res bool) uint32 {
	f := uint32(act) & 3
	if bias {
		f |= 4
	}
	if res {
		f |= 8
	}
	return f
}

// MatMul writes dst [..., N] = act(x [..., K] · wᵀ + bias) + residual for
// an fp16 weight w [N, K] and optional fp16 bias [N].
func (d *Device) MatMul(dst, x, w, bias, residual *Tensor, act backend.Activation) error {
	if err := d.live("matmul", dst, x, w, bias, residual); err != nil {
		return err
	}
	if len(w.dims) != 2 {
		return fmt.Errorf("matmul: weight %v must be [out, in]", w.dims)
	}
	n, k := w.dims[0], w.dims[1]
	if x.dims[len(x.dims)-1] != k {
		return fmt.Errorf("matmul: x %v has %d features, weight %v takes %d", x.dims, x.dims[len(x.dims)-1], w.dims, k)
	}
	m := x.Len() / k
	if dst.Len() != m*n || dst.dims[len(dst.dims)-1] != n {
		return fmt.Errorf("matmul: dst %v, want [..., %d] with %d rows", dst.dims, n, m)
	}
	dt, err := activations("matmul", dst, "x residual", x, residual)
	if err != nil {
		return err
	}
	if err := want("matmul", "weight", w, tensor.F16); err != nil {
		return err
	}
	reads := []*Buffer{x.buf, w.buf, d.dummy, d.dummy}
	if bias != nil {
		if bias.Len() != n || bias.dtype != tensor.F16 {
			return fmt.Errorf("matmul: bias %v %v, want F16 [%d]", bias.dtype, bias.dims, n)
		}
		reads[2] = bias.buf
	}
	if residual != nil {
		if !sameDims(residual.dims, dst.dims) {
			return fmt.Errorf("matmul: residual %v, want dst's shape %v", residual.dims, dst.dims)
		}
		if residual.buf == dst.buf {
			return fmt.Errorf("matmul: residual must not alias dst")
		}
		reads[3] = residual.buf
	}
	if x.buf == dst.buf {
		return fmt.Errorf("matmul: dst must not alias x")
	}
	push := []uint32{uint32(m), uint32(n), uint32(k), epilogueFlags(act, bias != nil, residual != nil)}
	return d.run("matmul", dt, reads, []*Buffer{dst.buf}, push, [3]uint32{uint32((n + 63) / 64), uint32((m + 63) / 64), 1})
}

// Conv2D convolves x [N, H, W, Cin] with an fp16 weight [Cout, Cin, k, k]
// (k of 1 or 3, padding k/2) at stride 1 or 2 into dst [N, Ho, Wo, Cout].
func (d *Device) Conv2D(dst, x, w, bias, residual *Tensor, stride int, act backend.Activation) error {
	if err := d.live("conv2d", dst, x, w, bias, residual); err != nil {
		return err
	}
	if len(w.dims) != 4 || w.dims[2] != w.dims[3] || (w.dims[2] != 1 && w.dims[2] != 3) {
		return fmt.Errorf("conv2d: weight %v must be [out, in, k, k] with k 1 or 3", w.dims)
	}
	if stride != 1 && stride != 2 {
		return fmt.Errorf("conv2d: stride %d, want 1 or 2", stride)
	}
	if len(x.dims) != 4 || x.dims[3] != w.dims[1] {
		return fmt.Errorf("conv2d: x %v must be [N, H, W, %d]", x.dims, w.dims[1])
	}
	cout, cin, ks := w.dims[0], w.dims[1], w.dims[2]
	nb, h, wd := x.dims[0], x.dims[1], x.dims[2]
	ho, wo := (h-1)/stride+1, (wd-1)/stride+1
	if !sameDims(dst.dims, []int{nb, ho, wo, cout}) {
		return fmt.Errorf("conv2d: dst %v, want %v", dst.dims, []int{nb, ho, wo, cout})
	}
	dt, err := activations("conv2d", dst, "x residual", x, residual)
	if err != nil {
		return err
	}
	if err := want("conv2d", "weight", w, tensor.F16); err != nil {
		return err
	}
	if x.buf == dst.buf {
		return fmt.Errorf("conv2d: dst must not alias x")
	}
	reads := []*Buffer{x.buf, w.buf, d.dummy, d.dummy}
	if bias != nil {
		if bias.Len() != cout || bias.dtype != tensor.F16 {
			return fmt.Errorf("conv2d: bias %v %v, want F16 [%d]", bias.dtype, bias.dims, cout)
		}
		reads[2] = bias.buf
	}
	if residual != nil {
		if !sameDims(residual.dims, dst.dims) {
			return fmt.Errorf("conv2d: residual %v, want dst's shape %v", residual.dims, dst.dims)
		}
		if residual.buf == dst.buf {
			return fmt.Errorf("conv2d: residual must not alias dst")
		}
		reads[3] = residual.buf
	}
	m, k := nb*ho*wo, cin*ks*ks
	push := []uint32{uint32(m), uint32(cout), uint32(k), epilogueFlags(act, bias != nil, residual != nil),
		uint32(h), uint32(wd), uint32(cin), uint32(ho), uint32(wo), uint32(ks), uint32(stride), uint32(ks / 2)}
	return d.run("conv2d", dt, reads, []*Buffer{dst.buf}, push, [3]uint32{uint32((cout + 63) / 64), uint32((m + 63) / 64), 1})
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// GroupNorm normalises x [N, ..., C] over groups channel groups and all
// positions, then applies fp16 scale and shift [C] and act.
func (d *Device) GroupNorm(dst, x *Tensor, groups int, scale, shift *Tensor, eps float32, act backend.Activation) error {
	if err := d.live("groupnorm", dst, x, scale, shift); err != nil {
		return err
	}
	if len(x.dims) < 2 {
		return fmt.Errorf("groupnorm: x %v must be [N, ..., C]", x.dims)
	}
	c := x.dims[len(x.dims)-1]
	if groups <= 0 || c%groups != 0 {
		return fmt.Errorf("groupnorm: %d channels do not split into %d groups", c, groups)
	}
	if act != backend.None && act != backend.SiLU {
		return fmt.Errorf("groupnorm: activation %v, want none or silu", act)
	}
	if !sameDims(dst.dims, x.dims) {
		return fmt.Errorf("groupnorm: dst %v, want x's shape %v", dst.dims, x.dims)
	}
	if scale.Len() != c || shift.Len() != c {
		return fmt.Errorf("groupnorm: scale %v and shift %v must have %d elements", scale.dims, shift.dims, c)
	}
	dt, err := activations("groupnorm", dst, "x", x)
	if err := firstErr(err, want("groupnorm", "scale", scale, tensor.F16), want("groupnorm", "shift", shift, tensor.F16)); err != nil {
		return err
	}
	if x.buf == dst.buf {
		return fmt.Errorf("groupnorm: dst must not alias x")
	}
	n := x.dims[0]
	p := x.Len() / (n * c)
	push := []uint32{uint32(p), uint32(c), uint32(groups), uint32(act), f32(eps)}
	return d.run("groupnorm", dt, []*Buffer{x.buf, scale.buf, shift.buf}, []*Buffer{dst.buf}, push, [3]uint32{uint32(n * groups), 1, 1})
}

// LayerNorm normalises every row of x [..., C] and applies fp16 scale and
// shift [C].
func (d *Device) LayerNorm(dst, x, scale, shift *Tensor, eps float32) error {
	if err := d.live("layernorm", dst, x, scale, shift); err != nil {
		return err
	}
	c := x.dims[len(x.dims)-1]
	if !sameDims(dst.dims, x.dims) {
		return fmt.Errorf("layernorm: dst %v, want x's shape %v", dst.dims, x.dims)
	}
	if scale.Len() != c || shift.Len() != c {
		return fmt.Errorf("layernorm: scale %v and shift %v must have %d elements", scale.dims, shift.dims, c)
	}
	dt, err := activations("layernorm", dst, "x", x)
	if err := firstErr(err, want("layernorm", "scale", scale, tensor.F16), want("layernorm", "shift", shift, tensor.F16)); err != nil {
		return err
	}
	if x.buf == dst.buf {
		return fmt.Errorf("layernorm: dst must not alias x")
	}
	rows := x.Len() / c
	return d.run("layernorm", dt, []*Buffer{x.buf, scale.buf, shift.buf}, []*Buffer{dst.buf}, []uint32{uint32(rows), uint32(c), f32(eps)}, [3]uint32{uint32(rows), 1, 1})
}

// MaxHeadWidth is the widest attention head the fused kernel holds in
// registers (SD 1.5: 40, 80, 160; SD 2: 64).
const MaxHeadWidth = 160

// Attention computes softmax(q·kᵀ·scale)·v per head for q [B, Tq, C] and
// k, v [B, Tk, C] into dst [B, Tq, C].
func (d *Device) Attention(dst, q, k, v *Tensor, p backend.AttentionParams) error {
	if err := d.live("attention", dst, q, k, v); err != nil {
		return err
	}
	if len(q.dims) != 3 || len(k.dims) != 3 || len(v.dims) != 3 {
		return fmt.Errorf("attention: q %v, k %v, v %v must be [B, T, C]", q.dims, k.dims, v.dims)
	}
	b, tq, c := q.dims[0], q.dims[1], q.dims[2]
	tk := k.dims[1]
	if !sameDims(k.dims, []int{b, tk, c}) || !sameDims(v.dims, k.dims) {
		return fmt.Errorf("attention: k %v and v %v must be [%d, Tk, %d]", k.dims, v.dims, b, c)
	}
	if !sameDims(dst.dims, q.dims) {
		return fmt.Errorf("attention: dst %v, want q's shape %v", dst.dims, q.dims)
	}
	if p.Heads <= 0 || c%p.Heads != 0 {
		return fmt.Errorf("attention: %d features do not split into %d heads", c, p.Heads)
	}
	hd := c / p.Heads
	if hd > MaxHeadWidth {
		return fmt.Errorf("attention: head width %d exceeds the kernel's %d", hd, MaxHeadWidth)
	}
	if p.Causal && tk < tq {
		return fmt.Errorf("attention: causal attention needs Tk %d >= Tq %d", tk, tq)
	}
	dt, err := activations("attention", dst, "q k v", q, k, v)
	if err != nil {
		return err
	}
	for _, t := range []*Tensor{q, k, v} {
		if t.buf == dst.buf {
			return fmt.Errorf("attention: dst must not alias q, k or v")
		}
	}
	scale := p.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(hd)))
	}
	causal := uint32(0)
	if p.Causal {
		causal = 1
	}
	push := []uint32{uint32(tq), uint32(tk), uint32(c), uint32(hd), causal, f32(scale)}
	return d.run("attention", dt, []*Buffer{q.buf, k.buf, v.buf}, []*Buffer{dst.buf}, push, [3]uint32{uint32((tq + 63) / 64), uint32(p.Heads), uint32(b)})
}

// Point-wise operations of elementwise.comp.
const (
	opActivate uint32 = iota
	opAxpby
	opChannelBias
	opGEGLU
	opConcat
)

func (d *Device) elementwise(op uint32, dst, x, y *Tensor, act backend.Activation, c0, c1 int, a, b float32) error {
	yb := d.dummy
	if y != nil {
		yb = y.buf
	}
	n := dst.Len()
	push := []uint32{op, uint32(n), uint32(act), uint32(c0), uint32(c1), f32(a), f32(b)}
	return d.run("elementwise", dst.dtype, []*Buffer{x.buf, yb}, []*Buffer{dst.buf}, push, [3]uint32{groupsFor(n, 256), 1, 1})
}

func (d *Device) pointwise(name string, dst *Tensor, ins ...*Tensor) error {
	if err := d.live(name, append([]*Tensor{dst}, ins...)...); err != nil {
		return err
	}
	if dst.weight || (dst.dtype != tensor.F16 && dst.dtype != tensor.F32) {
		return fmt.Errorf("%s: dst %v is a weight or %v, want an F16 or F32 activation", name, dst.dims, dst.dtype)
	}
	for _, t := range ins {
		if t.weight {
			return fmt.Errorf("%s: tensor %v is a weight, want an activation", name, t.dims)
		}
		if t.dtype != dst.dtype {
			return fmt.Errorf("%s: tensor %v is %v but dst is %v: the activations of one operation share a dtype", name, t.dims, t.dtype, dst.dtype)
		}
	}
	return nil
}

// Activate applies act to every element; dst may be x.
func (d *Device) Activate(dst, x *Tensor, act backend.Activation) error {
	if err := d.pointwise("activate", dst, x); err != nil {
		return err
	}
	if dst.Len() != x.Len() {
		return fmt.Errorf("activate: dst %v and x %v differ in size", dst.dims, x.dims)
	}
	return d.elementwise(opActivate, dst, x, nil, act, 0, 0, 0, 0)
}

// Axpby writes dst = a·x + b·y; dst may be x or y.
func (d *Device) Axpby(dst *Tensor, a float32, x *Tensor, b float32, y *Tensor) error {
	if err := d.pointwise("axpby", dst, x, y); err != nil {
		return err
	}
	if dst.Len() != x.Len() || dst.Len() != y.Len() {
		return fmt.Errorf("axpby: dst %v, x %v and y %v differ in size", dst.dims, x.dims, y.dims)
	}
	return d.elementwise(opAxpby, dst, x, y, backend.None, 0, 0, a, b)
}

// AddChannelBias adds bias [N, C] to every position of x [N, ..., C].
func (d *Device) AddChannelBias(dst, x, bias *Tensor) error {
	if err := d.pointwise("add channel bias", dst, x, bias); err != nil {
		return err
	}
	if len(x.dims) < 2 || !sameDims(dst.dims, x.dims) {
		return fmt.Errorf("add channel bias: x %v must be [N, ..., C] and dst %v the same", x.dims, dst.dims)
	}
	n, c := x.dims[0], x.dims[len(x.dims)-1]
	if bias.Len() != n*c {
		return fmt.Errorf("add channel bias: bias %v, want [%d, %d]", bias.dims, n, c)
	}
	return d.elementwise(opChannelBias, dst, x, bias, backend.None, c, x.Len()/n, 0, 0)
}

// GEGLU writes dst [..., F] = value · GELU(gate) for x [..., 2F].
func (d *Device) GEGLU(dst, x *Tensor) error {
	if err := d.pointwise("geglu", dst, x); err != nil {
		return err
	}
	f2 := x.dims[len(x.dims)-1]
	f := dst.dims[len(dst.dims)-1]
	if f2 != 2*f || dst.Len()*2 != x.Len() {
		return fmt.Errorf("geglu: x %v must be [..., 2F] for dst %v [..., F]", x.dims, dst.dims)
	}
	if x.buf == dst.buf {
		return fmt.Errorf("geglu: dst must not alias x")
	}
	return d.elementwise(opGEGLU, dst, x, nil, backend.None, f, 0, 0, 0)
}

// Concat joins a [..., Ca] and b [..., Cb] into dst [..., Ca+Cb].
func (d *Device) Concat(dst, a, b *Tensor) error {
	if err := d.pointwise("concat", dst, a, b); err != nil {
		return err
	}
	ca, cb := a.dims[len(a.dims)-1], b.dims[len(b.dims)-1]
	rows := a.Len() / ca
	if b.Len()/cb != rows || dst.Len() != rows*(ca+cb) || dst.dims[len(dst.dims)-1] != ca+cb {
		return fmt.Errorf("concat: a %v and b %v do not join into dst %v", a.dims, b.dims, dst.dims)
	}
	if a.buf == dst.buf || b.buf == dst.buf {
		return fmt.Errorf("concat: dst must not alias a or b")
	}
	return d.elementwise(opConcat, dst, a, b, backend.None, ca, cb, 0, 0)
}

// ResizeNearest writes dst [N, Ho, Wo, C] from x [N, H, W, C] with
// PyTorch's nearest index rule.
func (d *Device) ResizeNearest(dst, x *Tensor) error {
	if err := d.pointwise("resize", dst, x); err != nil {
		return err
	}
	if len(x.dims) != 4 || len(dst.dims) != 4 || x.dims[0] != dst.dims[0] || x.dims[3] != dst.dims[3] {
		return fmt.Errorf("resize: x %v and dst %v must be [N, H, W, C] with equal N and C", x.dims, dst.dims)
	}
	if x.buf == dst.buf {
		return fmt.Errorf("resize: dst must not alias x")
	}
	h, w, ho, wo := x.dims[1], x.dims[2], dst.dims[1], dst.dims[2]
	n := dst.Len()
	push := []uint32{uint32(n), uint32(h), uint32(w), uint32(ho), uint32(wo), uint32(x.dims[3]),
		f32(float32(h) / float32(ho)), f32(float32(w) / float32(wo))}
	return d.run("resize", dst.dtype, []*Buffer{x.buf}, []*Buffer{dst.buf}, push, [3]uint32{groupsFor(n, 256), 1, 1})
}

// Embedding copies rows ids of an fp16 table [V, D] into dst.
func (d *Device) Embedding(dst, table *Tensor, ids []int) error {
	if err := d.live("embedding", dst, table); err != nil {
		return err
	}
	if len(table.dims) != 2 {
		return fmt.Errorf("embedding: table %v must be [V, D]", table.dims)
	}
	v, dim := table.dims[0], table.dims[1]
	if dst.Len() != len(ids)*dim || dst.dims[len(dst.dims)-1] != dim {
		return fmt.Errorf("embedding: dst %v, want %d rows of %d", dst.dims, len(ids), dim)
	}
	if dst.weight || (dst.dtype != tensor.F16 && dst.dtype != tensor.F32) {
		return fmt.Errorf("embedding: dst %v is a weight or %v, want an F16 or F32 activation", dst.dims, dst.dtype)
	}
	raw := make([]byte, 4*len(ids))
	for i, id := range ids {
		if id < 0 || id >= v {
			return fmt.Errorf("embedding: ids[%d] = %d is outside [0, %d)", i, id, v)
		}
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	}
	idb, err := d.pool.get("embedding ids", uint64(len(raw)), false)
	if err != nil {
		return err
	}
	if err := d.stage(idb, 0, raw); err != nil {
		d.pool.put(idb)
		return err
	}
	n := dst.Len()
	// The table is an fp16 weight or activation, or an fp32 activation.
	kernel := "embedding"
	if table.dtype == tensor.F32 {
		kernel = "embedding_t32"
	}
	err = d.run(kernel, dst.dtype, []*Buffer{table.buf, idb}, []*Buffer{dst.buf}, []uint32{uint32(n), uint32(dim)}, [3]uint32{groupsFor(n, 256), 1, 1})
	// Back to the pool at once: a later user is ordered after this read.
	d.pool.put(idb)
	return err
}
