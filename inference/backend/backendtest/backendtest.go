package backendtest

import (
	"math"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Options adapt the checks to a backend.
type Options struct {
	// Tolerance is the largest relative error allowed on the small
	// numeric checks, whose values are all of order one: 1e-5 suits a
	// float32 backend; a backend that stores activations in fp16 needs
	// about 2e-3 (fp16's unit roundoff 4.9e-4 over a few roundings).
	Tolerance float64
}

// Run checks b against the contract of backend.Backend. b must be fresh
// and is not closed.
func Run(t *testing.T, b backend.Backend, opts Options) {
	tol := opts.Tolerance
	if tol == 0 {
		tol = 1e-5
	}
	c := &checker{b: b, tol: tol}
	t.Run("alloc write read", c.allocWriteRead)
	t.Run("reshape shares memory", c.reshape)
	t.Run("operations see writes in call order", c.ordering)
	t.Run("scope releases its tensors", c.scope)
	t.Run("weights in every stored dtype", c.weights)
	t.Run("in-place element-wise operations", c.inPlace)
	t.Run("errors name the argument", c.errors)
	t.Run("unload", c.unload)
}

type checker struct {
	b   backend.Backend
	tol float64
}

func (c *checker) upload(t *testing.T, values []float32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := c.b.Alloc(shape...)
	if err != nil {
		t.Fatalf("Alloc%v: %v", shape, err)
	}
	t.Cleanup(func() { c.b.Release(x) })
	if err := c.b.Write(x, values); err != nil {
		t.Fatalf("Write%v: %v", shape, err)
	}
	return x
}

func (c *checker) alloc(t *testing.T, shape ...int) backend.Tensor {
	t.Helper()
	x, err := c.b.Alloc(shape...)
	if err != nil {
		t.Fatalf("Alloc%v: %v", shape, err)
	}
	t.Cleanup(func() { c.b.Release(x) })
	return x
}

func (c *checker) read(t *testing.T, x backend.Tensor) []float32 {
	t.Helper()
	h, err := backend.ToHost(c.b, x)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return h.Data
}

// near reports whether got matches want within the tolerance, relative to
// the larger of |want| and 1.
func (c *checker) near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(float64(got[i])) || d > c.tol*max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s: element %d is %g, want %g", what, i, got[i], want[i])
		}
	}
}

// ramp is 0, 1/8, 2/8, ...: exact in fp16 for the small sizes used here.
func ramp(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%64) / 8
	}
	return v
}

func (c *checker) allocWriteRead(t *testing.T) {
	x := c.alloc(t, 2, 3, 5)
	if got := x.Dims(); !tensor.EqualShape(got, []int{2, 3, 5}) {
		t.Fatalf("Dims %v, want [2 3 5]", got)
	}
	switch x.DType() {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		t.Fatalf("DType %v, want F32, F16 or BF16", x.DType())
	}
	src := ramp(30)
	if err := c.b.Write(x, src); err != nil {
		t.Fatal(err)
	}
	// The source may be reused as soon as Write returns.
	for i := range src {
		src[i] = -1
	}
	c.near(t, "read back", c.read(t, x), ramp(30))
	if _, err := c.b.Alloc(2, -1); err == nil {
		t.Error("Alloc accepted a negative dimension")
	}
	if err := c.b.Write(x, make([]float32, 29)); err == nil {
		t.Error("Write accepted 29 values for 30 elements")
	}
	if err := c.b.Read(make([]float32, 31), x); err == nil {
		t.Error("Read accepted 31 values for 30 elements")
	}
	if err := c.b.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

func (c *checker) reshape(t *testing.T) {
	x := c.upload(t, ramp(24), 2, 3, 4)
	v, err := c.b.Reshape(x, 6, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Dims(); !tensor.EqualShape(got, []int{6, 4}) {
		t.Fatalf("view Dims %v, want [6 4]", got)
	}
	c.near(t, "view", c.read(t, v), ramp(24))
	// Writing the view changes the base.
	ones := make([]float32, 24)
	for i := range ones {
		ones[i] = 1
	}
	if err := c.b.Write(v, ones); err != nil {
		t.Fatal(err)
	}
	c.near(t, "base after writing the view", c.read(t, x), ones)
	// Releasing a view does nothing to the base.
	c.b.Release(v)
	c.near(t, "base after releasing the view", c.read(t, x), ones)
	if _, err := c.b.Reshape(x, 5, 5); err == nil {
		t.Error("Reshape of 24 elements to [5 5] was accepted")
	}
}

// ordering checks that a write issued after an operation does not reach
// that operation, and one issued before it does, which a backend that
// records operations must keep.
func (c *checker) ordering(t *testing.T) {
	x := c.upload(t, ramp(8), 2, 4)
	y := c.upload(t, make([]float32, 8), 2, 4)
	first, second := c.alloc(t, 2, 4), c.alloc(t, 2, 4)
	if err := c.b.Axpby(first, 1, x, 1, y); err != nil {
		t.Fatal(err)
	}
	later := make([]float32, 8)
	for i := range later {
		later[i] = 10
	}
	if err := c.b.Write(y, later); err != nil {
		t.Fatal(err)
	}
	if err := c.b.Axpby(second, 1, x, 1, y); err != nil {
		t.Fatal(err)
	}
	want1, want2 := ramp(8), ramp(8)
	for i := range want2 {
		want2[i] += 10
	}
	c.near(t, "result computed before the write", c.read(t, first), want1)
	c.near(t, "result computed after the write", c.read(t, second), want2)
	// A tensor released and allocated again is safe to overwrite while
	// an earlier operation that read the old one is still pending.
	tmp := c.upload(t, ramp(8), 2, 4)
	out := c.alloc(t, 2, 4)
	if err := c.b.Axpby(out, 2, tmp, 0, tmp); err != nil {
		t.Fatal(err)
	}
	c.b.Release(tmp)
	overwrite := make([]float32, 8)
	for i := range overwrite {
		overwrite[i] = 99
	}
	c.upload(t, overwrite, 2, 4)
	want := ramp(8)
	for i := range want {
		want[i] *= 2
	}
	c.near(t, "result of a pending operation whose input was released", c.read(t, out), want)
}

func (c *checker) scope(t *testing.T) {
	s := backend.NewScope(c.b)
	x, err := s.Upload(ramp(6), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.Alloc(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.b.Activate(y, x, backend.None); err != nil {
		t.Fatal(err)
	}
	c.near(t, "activation none", c.read(t, y), ramp(6))
	s.Release()
	// A released scope is reusable.
	if _, err := s.Alloc(4); err != nil {
		t.Fatal(err)
	}
	s.Release()
}

func (c *checker) weights(t *testing.T) {
	values := []float32{0.5, -1.25, 2, 0.125, -3, 1}
	for _, raw := range []tensor.Raw{
		tensor.RawFromFloat32(values, 6),
		encode(tensor.F16, values, tensor.Float32ToHalf),
		encode(tensor.BF16, values, tensor.Float32ToBFloat16),
	} {
		w, err := c.b.LoadTensor(raw)
		if err != nil {
			t.Fatalf("LoadTensor %v: %v", raw.DType, err)
		}
		// The loader may drop the stored bytes once the load returns.
		clear(raw.Data)
		c.near(t, "LoadTensor "+raw.DType.String(), c.read(t, w), values)
		// A loaded weight is an operand like an activation: use it as
		// the scale and shift of a layer norm over six features.
		x := c.upload(t, ramp(12), 2, 6)
		dst := c.alloc(t, 2, 6)
		if err := c.b.LayerNorm(dst, x, w, w, 1e-5); err != nil {
			t.Fatalf("LayerNorm with %v weights: %v", raw.DType, err)
		}
		c.b.Unload(w)
	}
	// A [3, 2] linear layer stored in fp16 with an fp32 bias: the stored
	// dtypes may differ within one layer.
	lw := encode(tensor.F16, []float32{1, 0, 0, 1, 1, 1}, tensor.Float32ToHalf)
	lw.Shape = []int{3, 2}
	bias := tensor.RawFromFloat32([]float32{0.5, 0, -1}, 3)
	lin, err := c.b.LoadLinear(lw, &bias)
	if err != nil {
		t.Fatal(err)
	}
	if lin.In() != 2 || lin.Out() != 3 {
		t.Fatalf("linear is %d->%d, want 2->3", lin.In(), lin.Out())
	}
	x := c.upload(t, []float32{1, 2, 3, 4}, 2, 2)
	dst := c.alloc(t, 2, 3)
	if err := c.b.MatMul(dst, x, lin, backend.Epilogue{}); err != nil {
		t.Fatal(err)
	}
	c.near(t, "fp16 linear", c.read(t, dst), []float32{1.5, 2, 2, 3.5, 4, 6})
	c.b.Unload(lin)
}

func encode(dt tensor.DType, values []float32, conv func(float32) uint16) tensor.Raw {
	data := make([]byte, 2*len(values))
	for i, v := range values {
		h := conv(v)
		data[2*i], data[2*i+1] = byte(h), byte(h>>8)
	}
	return tensor.Raw{DType: dt, Shape: []int{len(values)}, Data: data}
}

func (c *checker) inPlace(t *testing.T) {
	x := c.upload(t, ramp(8), 2, 4)
	if err := c.b.Axpby(x, 2, x, 1, x); err != nil {
		t.Fatal(err)
	}
	want := ramp(8)
	for i := range want {
		want[i] *= 3
	}
	c.near(t, "axpby in place", c.read(t, x), want)
	bias := c.upload(t, []float32{1, 1, 1, 1, -1, -1, -1, -1}, 2, 4)
	if err := c.b.AddChannelBias(x, x, bias); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i] += []float32{1, -1}[i/4]
	}
	c.near(t, "channel bias in place", c.read(t, x), want)
}

// foreign is a tensor no backend made.
type foreign struct{}

func (foreign) Dims() []int         { return []int{2, 4} }
func (foreign) DType() tensor.DType { return tensor.F32 }

func (c *checker) errors(t *testing.T) {
	x := c.upload(t, ramp(8), 2, 4)
	wrong := c.alloc(t, 2, 5)
	seq := c.upload(t, ramp(8), 1, 2, 4)
	cases := []struct {
		name, want string
		err        error
	}{
		{"foreign input", "x", c.b.Activate(x, foreign{}, backend.SiLU)},
		{"foreign dst", "dst", c.b.Activate(foreign{}, x, backend.SiLU)},
		{"nil input", "x", c.b.Activate(x, nil, backend.SiLU)},
		{"shape mismatch", "dst", c.b.Activate(wrong, x, backend.SiLU)},
		{"embedding id", "ids", c.b.Embedding(c.alloc(t, 1, 4), x, []int{2})},
		{"dst aliasing an input", "dst", c.b.Attention(seq, seq, seq, seq, backend.AttentionParams{Heads: 2})},
	}
	for _, tc := range cases {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %q", tc.name, tc.err, tc.want)
		}
	}
	if err := c.b.Sync(); err != nil {
		t.Errorf("Sync after rejected operations: %v", err)
	}
}

func (c *checker) unload(t *testing.T) {
	w, err := c.b.LoadTensor(tensor.RawFromFloat32(ramp(4), 4))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := c.b.LoadConv2D(tensor.RawFromFloat32(ramp(2*3*9), 2, 3, 3, 3), nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.b.Unload(w, nil, conv)
	if err := c.b.Sync(); err != nil {
		t.Errorf("Sync after Unload: %v", err)
	}
}
