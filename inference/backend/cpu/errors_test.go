package cpu

import (
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// Bad input must come back as an error naming the argument, never a panic.
func TestBadInputReturnsErrors(t *testing.T) {
	b, err := New(Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lin, err := b.LoadLinear(tensor.RawFromFloat32(make([]float32, 12), 3, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.LoadConv2D(tensor.RawFromFloat32(make([]float32, 2*3*9), 2, 3, 3, 3), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.MustNew(2, 4)
	img := tensor.MustNew(1, 5, 5, 3)
	seq := tensor.MustNew(1, 6, 8)
	short := &tensor.Tensor{Shape: []int{2, 4}, Data: make([]float32, 7)}
	bad16 := tensor.Raw{DType: tensor.F16, Shape: []int{3, 4}, Data: make([]byte, 23)}
	shortBias := tensor.RawFromFloat32(make([]float32, 2), 2)

	cases := []struct {
		name string
		want string // a fragment the error must contain
		call func() error
	}{
		{"linear rank", "linear weight", func() error { _, err := b.LoadLinear(tensor.RawFromFloat32(make([]float32, 4), 4), nil); return err }},
		{"linear byte count", "expected 24 bytes", func() error { _, err := b.LoadLinear(bad16, nil); return err }},
		{"linear bias length", "bias", func() error {
			_, err := b.LoadLinear(tensor.RawFromFloat32(make([]float32, 12), 3, 4), &shortBias)
			return err
		}},
		{"conv kernel size", "conv weight", func() error {
			_, err := b.LoadConv2D(tensor.RawFromFloat32(make([]float32, 2*3*4), 2, 3, 2, 2), nil, 1)
			return err
		}},
		{"conv stride", "conv stride", func() error {
			_, err := b.LoadConv2D(tensor.RawFromFloat32(make([]float32, 2*3*9), 2, 3, 3, 3), nil, 3)
			return err
		}},
		{"matmul width", "matmul x", func() error { return b.MatMul(tensor.MustNew(2, 3), tensor.MustNew(2, 5), lin, backend.Epilogue{}) }},
		{"matmul dst", "matmul dst", func() error { return b.MatMul(tensor.MustNew(2, 4), x, lin, backend.Epilogue{}) }},
		{"matmul inconsistent x", "matmul x", func() error { return b.MatMul(tensor.MustNew(2, 3), short, lin, backend.Epilogue{}) }},
		{"matmul residual", "residual", func() error {
			return b.MatMul(tensor.MustNew(2, 3), x, lin, backend.Epilogue{Residual: tensor.MustNew(3, 3)})
		}},
		{"matmul foreign weight", "not loaded", func() error { return b.MatMul(tensor.MustNew(2, 3), x, nil, backend.Epilogue{}) }},
		{"matmul in place", "share memory", func() error {
			sq, _ := b.LoadLinear(tensor.RawFromFloat32(make([]float32, 16), 4, 4), nil)
			return b.MatMul(x, x, sq, backend.Epilogue{})
		}},
		{"conv channels", "conv x", func() error {
			return b.Conv2D(tensor.MustNew(1, 3, 3, 2), tensor.MustNew(1, 5, 5, 4), conv, backend.Epilogue{})
		}},
		{"conv dst", "conv dst", func() error { return b.Conv2D(tensor.MustNew(1, 2, 2, 2), img, conv, backend.Epilogue{}) }},
		{"group norm groups", "groups", func() error {
			return b.GroupNorm(tensor.MustNew(1, 5, 5, 3), img, 2, tensor.MustNew(3), tensor.MustNew(3), 1e-5, backend.None)
		}},
		{"group norm scale", "scale", func() error {
			return b.GroupNorm(tensor.MustNew(1, 5, 5, 3), img, 3, tensor.MustNew(2), tensor.MustNew(3), 1e-5, backend.None)
		}},
		{"group norm act", "activation", func() error {
			return b.GroupNorm(tensor.MustNew(1, 5, 5, 3), img, 3, tensor.MustNew(3), tensor.MustNew(3), 1e-5, backend.GELU)
		}},
		{"layer norm shift", "shift", func() error {
			return b.LayerNorm(tensor.MustNew(2, 4), x, tensor.MustNew(4), tensor.MustNew(3), 1e-5)
		}},
		{"attention heads", "heads", func() error {
			return b.Attention(tensor.MustNew(1, 6, 8), seq, seq, seq, backend.AttentionParams{Heads: 3})
		}},
		{"attention value shape", "attention v", func() error {
			return b.Attention(tensor.MustNew(1, 6, 8), seq, seq, tensor.MustNew(1, 5, 8), backend.AttentionParams{Heads: 2})
		}},
		{"attention no keys", "no keys", func() error {
			return b.Attention(tensor.MustNew(1, 6, 8), seq, tensor.MustNew(1, 0, 8), tensor.MustNew(1, 0, 8), backend.AttentionParams{Heads: 2})
		}},
		{"attention aliasing", "share memory", func() error { return b.Attention(seq, seq, seq, seq, backend.AttentionParams{Heads: 2}) }},
		{"geglu odd", "odd", func() error { return b.GEGLU(tensor.MustNew(1, 1), tensor.MustNew(1, 3)) }},
		{"activate unknown", "unknown", func() error { return b.Activate(x, x, backend.Activation(42)) }},
		{"resize dst", "resize dst", func() error { return b.ResizeNearest(tensor.MustNew(1, 10, 10, 4), img) }},
		{"foreign tensor", "not made by the cpu backend", func() error { return b.Activate(x, foreign{}, backend.SiLU) }},
		{"scale rank", "group norm scale", func() error {
			return b.GroupNorm(tensor.MustNew(1, 5, 5, 3), img, 3, tensor.MustNew(1, 3), tensor.MustNew(3), 1e-5, backend.None)
		}},
		{"concat mismatch", "concat b", func() error { return b.Concat(tensor.MustNew(2, 9), x, tensor.MustNew(3, 5)) }},
		{"embedding id", "ids[1]", func() error { return b.Embedding(tensor.MustNew(2, 4), x, []int{0, 2}) }},
		{"embedding negative id", "ids[0]", func() error { return b.Embedding(tensor.MustNew(1, 4), x, []int{-1}) }},
		{"axpby shapes", "axpby y", func() error { return b.Axpby(x, 1, x, 1, tensor.MustNew(4, 2)) }},
		{"channel bias shape", "channel bias bias", func() error { return b.AddChannelBias(img, img, tensor.MustNew(1, 4)) }},
		{"nil tensor", "nil", func() error { return b.Activate(nil, x, backend.SiLU) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("expected an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{Kernel: "mmx"}); err == nil || !strings.Contains(err.Error(), "Kernel") {
		t.Fatalf("unknown kernel: err = %v", err)
	}
	if _, err := New(Options{Workers: -1}); err == nil || !strings.Contains(err.Error(), "Workers") {
		t.Fatalf("negative workers: err = %v", err)
	}
}

// foreign is a tensor another backend made.
type foreign struct{}

func (foreign) Dims() []int         { return []int{2, 4} }
func (foreign) DType() tensor.DType { return tensor.F16 }
