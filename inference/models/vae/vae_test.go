package vae

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func TestDecodeShapeAndRange(t *testing.T) {
	path, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := New(b, models.FromCheckpoint(ck, checkpoint.VAE), ck.VAE)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	z := tensor.MustNew(1, 3, 5, 4)
	for i := range z.Data {
		z.Data[i] = float32(r.NormFloat64())
	}
	before := z.Clone()
	img, err := d.Decode(z)
	if err != nil {
		t.Fatal(err)
	}
	if s := img.Shape; len(s) != 4 || s[0] != 1 || s[1] != 24 || s[2] != 40 || s[3] != 3 {
		t.Fatalf("image shape %v, want [1 24 40 3]", s)
	}
	lo, hi := float32(1), float32(0)
	for _, v := range img.Data {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("value %v outside [0, 1]", v)
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi-lo < 0.01 {
		t.Errorf("image values span only [%v, %v]; random latents should give a varied image", lo, hi)
	}
	// Decoding reads but does not modify the latents.
	for i := range z.Data {
		if z.Data[i] != before.Data[i] {
			t.Fatalf("latent %d changed from %v to %v", i, before.Data[i], z.Data[i])
		}
	}
	if _, err := d.Decode(tensor.MustNew(1, 3, 5, 3)); err == nil {
		t.Error("3 latent channels were accepted")
	}
	if _, err := New(b, models.MapSource{}, ck.VAE); err == nil || !strings.Contains(err.Error(), "post_quant_conv.weight") {
		t.Errorf("missing weights: %v", err)
	}
	bad := ck.VAE
	bad.ScalingFactor = 0
	if _, err := New(b, models.FromCheckpoint(ck, checkpoint.VAE), bad); err == nil {
		t.Error("a zero scaling factor was accepted")
	}
}
