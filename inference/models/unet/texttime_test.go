package unet

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func loadTinyXL(t *testing.T) (*Model, *checkpoint.Model) {
	t.Helper()
	path, err := testmodel.Generate(t.TempDir(), testmodel.Options{Family: checkpoint.SDXL, Size: testmodel.Tiny, Layout: checkpoint.SingleFile, Seed: 2})
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

// The SDXL UNet's prediction depends on the pooled embedding and on the
// size conditioning through the text_time embedding; it needs that input
// and checks its shape.
func TestSDXLTextTimeConditioning(t *testing.T) {
	m, ck := loadTinyXL(t)
	r := rand.New(rand.NewPCG(5, 6))
	pooledW := ck.TextEncoder2.ProjectionDim
	x, ctx := random(r, 1, 8, 6, 4), random(r, 1, 77, ck.UNet.CrossAttentionDim)
	pooled := random(r, 1, pooledW)
	predict := func(p backend.Tensor, s SizeConditioning) []float32 {
		t.Helper()
		added, err := AddedConditioning(m.b, m.cfg, p, s)
		if err != nil {
			t.Fatal(err)
		}
		defer m.b.Release(added)
		if got := added.Dims(); got[0] != 1 || got[1] != ck.UNet.AdditionEmbedDim {
			t.Fatalf("added conditioning shape %v", got)
		}
		out, err := m.ForwardAdded(x, 500, ctx, added)
		if err != nil {
			t.Fatal(err)
		}
		defer m.b.Release(out)
		h, err := backend.ToHost(m.b, out)
		if err != nil {
			t.Fatal(err)
		}
		return h.Data
	}
	base := predict(pooled, DefaultSizeConditioning(64, 48))
	differs := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return true
			}
		}
		return false
	}
	if !differs(base, predict(random(r, 1, pooledW), DefaultSizeConditioning(64, 48))) {
		t.Error("the pooled embedding does not change the prediction")
	}
	cropped := DefaultSizeConditioning(64, 48)
	cropped.CropTop = 16
	if !differs(base, predict(pooled, cropped)) {
		t.Error("the crop conditioning does not change the prediction")
	}
	if again := predict(pooled, DefaultSizeConditioning(64, 48)); differs(base, again) {
		t.Error("the same conditioning gave two predictions")
	}

	if _, err := m.Forward(x, 500, ctx); err == nil || !strings.Contains(err.Error(), "needs one") {
		t.Errorf("SDXL UNet without its added embedding: %v", err)
	}
	if _, err := m.ForwardAdded(x, 500, ctx, random(r, 1, 7)); err == nil || !strings.Contains(err.Error(), "expected [1,") {
		t.Errorf("added embedding of the wrong width: %v", err)
	}
	if _, err := AddedConditioning(m.b, m.cfg, random(r, 1, pooledW+1), DefaultSizeConditioning(64, 48)); err == nil || !strings.Contains(err.Error(), "six size values") {
		t.Errorf("pooled width that leaves no even split: %v", err)
	}
}
