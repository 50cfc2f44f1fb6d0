package unet

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func TestTimestepEmbedding(t *testing.T) {
	// dim 4: frequencies exp(-ln(10000)·i/2) = 1 and 0.01, cosines first.
	cases := []struct {
		t    float64
		want []float64
	}{
		{0, []float64{1, 1, 0, 0}},
		{1, []float64{math.Cos(1), math.Cos(0.01), math.Sin(1), math.Sin(0.01)}},
		{951, []float64{math.Cos(951), math.Cos(9.51), math.Sin(951), math.Sin(9.51)}},
	}
	for _, c := range cases {
		got := TimestepEmbedding(c.t, 4)
		for i, w := range c.want {
			// float32 arguments: 951 is exact, 9.51 is within 1e-6.
			if math.Abs(float64(got[i])-w) > 2e-5 {
				t.Errorf("t=%v: %v, want %v", c.t, got, c.want)
				break
			}
		}
	}
}

func loadTiny(t *testing.T) (*Model, *checkpoint.Model) {
	t.Helper()
	path, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ck.Close() })
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	m, err := New(b, models.FromCheckpoint(ck, checkpoint.UNet), ck.UNet)
	if err != nil {
		t.Fatal(err)
	}
	return m, ck
}

func random(r *rand.Rand, shape ...int) *tensor.Tensor {
	x := tensor.MustNew(shape...)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

// forwardToHost runs Forward on host inputs (the CPU backend's tensors)
// and reads the prediction back.
func forwardToHost(m *Model, x *tensor.Tensor, t float64, ctx *tensor.Tensor) (*tensor.Tensor, error) {
	out, err := m.Forward(x, t, ctx)
	if err != nil {
		return nil, err
	}
	defer m.b.Release(out)
	return backend.ToHost(m.b, out)
}

func TestForwardShapesBatchesAndConditioning(t *testing.T) {
	m, ck := loadTiny(t)
	r := rand.New(rand.NewPCG(1, 2))
	ctxDim := ck.UNet.CrossAttentionDim
	// 5×7 latents: odd sizes make the downsamplers round up, so the up path
	// must resize to the skip connections' sizes instead of doubling.
	one := random(r, 1, 5, 7, 4)
	ctx := random(r, 2, 77, ctxDim)
	two := tensor.MustNew(2, 5, 7, 4)
	copy(two.Data, one.Data)
	copy(two.Data[len(one.Data):], one.Data)
	out, err := forwardToHost(m, two, 500, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := out.Shape; len(s) != 4 || s[0] != 2 || s[1] != 5 || s[2] != 7 || s[3] != 4 {
		t.Fatalf("output shape %v, want [2 5 7 4]", s)
	}
	half := len(one.Data)
	differs := false
	for i := range half {
		v := out.Data[i]
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite output %v at %d", v, i)
		}
		if out.Data[i] != out.Data[half+i] {
			differs = true
		}
	}
	if !differs {
		t.Error("different text contexts gave the same prediction")
	}
	// Batch item 0 alone gives the same result as within the batch.
	ctx0, _ := tensor.FromData(ctx.Data[:77*ctxDim], 1, 77, ctxDim)
	single, err := forwardToHost(m, one, 500, ctx0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range half {
		if math.Abs(float64(single.Data[i]-out.Data[i])) > 1e-4 {
			t.Fatalf("batch of 1 and batch of 2 differ at %d: %v vs %v", i, single.Data[i], out.Data[i])
		}
	}
	// The timestep matters.
	later, err := forwardToHost(m, one, 10, ctx0)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range later.Data {
		if later.Data[i] != single.Data[i] {
			same = false
		}
	}
	if same {
		t.Error("timesteps 500 and 10 gave the same prediction")
	}
}

func TestRejectsBadConfigAndInput(t *testing.T) {
	m, ck := loadTiny(t)
	r := rand.New(rand.NewPCG(3, 4))
	if _, err := m.Forward(random(r, 1, 4, 4, 3), 1, random(r, 1, 77, ck.UNet.CrossAttentionDim)); err == nil {
		t.Error("3 input channels were accepted")
	}
	if _, err := m.Forward(random(r, 1, 4, 4, 4), 1, random(r, 2, 77, ck.UNet.CrossAttentionDim)); err == nil {
		t.Error("a context batch differing from the input batch was accepted")
	}
	b, _ := cpu.New(cpu.Options{Workers: 1})
	defer b.Close()
	for name, change := range map[string]func(*checkpoint.UNetConfig){
		"AdditionEmbedDim":              func(c *checkpoint.UNetConfig) { c.AdditionEmbedDim = -1 },
		"add_embedding.linear_1.weight": func(c *checkpoint.UNetConfig) { c.AdditionEmbedDim = 2816 },
		"Heads":                         func(c *checkpoint.UNetConfig) { c.Heads = []int{8, 8, 8} },
		"BlockOutChannels":              func(c *checkpoint.UNetConfig) { c.BlockOutChannels = []int{32, 32, 64, 48} },
	} {
		cfg := ck.UNet
		cfg.Heads = append([]int(nil), cfg.Heads...)
		change(&cfg)
		if _, err := New(b, models.FromCheckpoint(ck, checkpoint.UNet), cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
	// An SD 1.x UNet has no added embedding to feed.
	if _, err := m.ForwardAdded(random(r, 1, 4, 4, 4), 1, random(r, 1, 77, ck.UNet.CrossAttentionDim), random(r, 1, 2816)); err == nil || !strings.Contains(err.Error(), "has none") {
		t.Errorf("an added embedding for a UNet without one: %v", err)
	}
	if _, err := New(b, models.MapSource{}, ck.UNet); err == nil || !strings.Contains(err.Error(), "time_embedding.linear_1.weight") {
		t.Errorf("missing weights: %v", err)
	}
}
