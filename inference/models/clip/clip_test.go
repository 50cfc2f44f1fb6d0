package clip

import (
	"math"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/cpu"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
	"github.com/sdfleet/sdfleet/inference/tensor"
	"github.com/sdfleet/sdfleet/inference/testmodel"
)

func openTiny(t *testing.T) (*checkpoint.Model, *cpu.Backend) {
	t.Helper()
	path, err := testmodel.Generate(t.TempDir(), testmodel.Options{Size: testmodel.Tiny, Layout: checkpoint.Diffusers, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return m, b
}

func TestEncodeIsCausalAndShaped(t *testing.T) {
	m, b := openTiny(t)
	enc, err := New(b, models.FromCheckpoint(m, checkpoint.TextEncoder), m.TextEncoder, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 77)
	for i := range ids {
		ids[i] = (i * 37) % 500
	}
	changed := append([]int(nil), ids...)
	changed[5] = 499 - changed[5]
	out, err := encodeToHost(b, enc, [][]int{ids, changed})
	if err != nil {
		t.Fatal(err)
	}
	D := m.TextEncoder.HiddenSize
	if got := out.Shape; len(got) != 3 || got[0] != 2 || got[1] != 77 || got[2] != D {
		t.Fatalf("shape %v, want [2 77 %d]", got, D)
	}
	diff := func(pos int) float64 {
		worst := 0.0
		for d := range D {
			worst = max(worst, math.Abs(float64(out.Data[pos*D+d]-out.Data[(77+pos)*D+d])))
		}
		return worst
	}
	// A token only sees itself and earlier tokens: positions before the
	// changed one are identical, it and later ones are not.
	for pos := range 5 {
		if d := diff(pos); d != 0 {
			t.Errorf("position %d changed by %g when only token 5 changed", pos, d)
		}
	}
	for _, pos := range []int{5, 6, 76} {
		if diff(pos) == 0 {
			t.Errorf("position %d did not change when token 5 changed", pos)
		}
	}
	// After the final layer norm each token has mean ≈ mean(shift).
	finalShift, err := backend.ToHost(b, enc.final.Shift)
	if err != nil {
		t.Fatal(err)
	}
	var mean, shift float64
	for d := range D {
		mean += float64(out.Data[d])
		shift += float64(finalShift.Data[d])
	}
	if math.Abs(mean-shift)/float64(D) > 0.2 {
		t.Errorf("token 0 mean %g, far from the layer norm shift mean %g", mean/float64(D), shift/float64(D))
	}
}

func TestSkipLastLayersChangesOutput(t *testing.T) {
	m, b := openTiny(t)
	src := models.FromCheckpoint(m, checkpoint.TextEncoder)
	full, err := New(b, src, m.TextEncoder, Options{})
	if err != nil {
		t.Fatal(err)
	}
	skip, err := New(b, src, m.TextEncoder, Options{SkipLastLayers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(skip.layers) != m.TextEncoder.Layers-1 {
		t.Fatalf("%d layers loaded, want %d", len(skip.layers), m.TextEncoder.Layers-1)
	}
	ids := [][]int{make([]int, 77)}
	a, err := encodeToHost(b, full, ids)
	if err != nil {
		t.Fatal(err)
	}
	c, err := encodeToHost(b, skip, ids)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range a.Data {
		if a.Data[i] != c.Data[i] {
			same = false
		}
	}
	if same {
		t.Error("skipping the last layer did not change the output")
	}
}

func TestRejectsBadInput(t *testing.T) {
	m, b := openTiny(t)
	src := models.FromCheckpoint(m, checkpoint.TextEncoder)
	bad := m.TextEncoder
	bad.HiddenAct = "relu"
	if _, err := New(b, src, bad, Options{}); err == nil || !strings.Contains(err.Error(), "relu") {
		t.Errorf("hidden_act relu: %v", err)
	}
	if _, err := New(b, src, m.TextEncoder, Options{SkipLastLayers: m.TextEncoder.Layers}); err == nil {
		t.Error("skipping every layer was accepted")
	}
	_, err := New(b, models.MapSource{}, m.TextEncoder, Options{})
	if err == nil || !strings.Contains(err.Error(), "text_model.embeddings.token_embedding.weight") {
		t.Errorf("missing weights: %v, want the first missing tensor named", err)
	}
	enc, err := New(b, src, m.TextEncoder, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode([][]int{{1, 2}, {1}}); err == nil {
		t.Error("ragged sequences were accepted")
	}
	if _, err := enc.Encode([][]int{{m.TextEncoder.VocabSize}}); err == nil {
		t.Error("an id outside the vocabulary was accepted")
	}
	if _, err := enc.Encode(nil); err == nil {
		t.Error("an empty batch was accepted")
	}
}

// encodeToHost runs Encode and reads the result back.
func encodeToHost(b backend.Backend, m *Model, ids [][]int) (*tensor.Tensor, error) {
	out, err := m.Encode(ids)
	if err != nil {
		return nil, err
	}
	defer b.Release(out)
	return backend.ToHost(b, out)
}
