package clip

import (
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/models"
)

// The penultimate hidden state of a full encoder is the last hidden state of the same encoder
// loaded without its last layer (what SDXL reads from CLIP ViT-L); the pooled embedding needs
// text_projection and one end-token position per sequence.
func TestPenultimateHiddenState(t *testing.T) {
	m, b := openTiny(t)
	src := models.FromCheckpoint(m, checkpoint.TextEncoder)
	full, err := New(b, src, m.TextEncoder, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cut, err := New(b, src, m.TextEncoder, Options{SkipLastLayers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ids := [][]int{make([]int, 77), make([]int, 77)}
	for i := range ids[0] {
		ids[0][i], ids[1][i] = (7*i)%m.TextEncoder.VocabSize, (11*i+3)%m.TextEncoder.VocabSize
	}
	pen, pooled, err := full.EncodePenultimate(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pooled != nil {
		t.Error("a pooled embedding without positions")
	}
	last, err := cut.EncodeHidden(ids)
	if err != nil {
		t.Fatal(err)
	}
	a, err := backend.ToHost(b, pen)
	if err != nil {
		t.Fatal(err)
	}
	c, err := backend.ToHost(b, last)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Data {
		if a.Data[i] != c.Data[i] {
			t.Fatalf("value %d: penultimate %v, last of the cut encoder %v", i, a.Data[i], c.Data[i])
		}
	}
	// The final layer norm is not applied: Encode's output differs.
	normed, err := full.Encode(ids)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := backend.ToHost(b, normed)
	same := true
	for i := range n.Data {
		same = same && n.Data[i] == a.Data[i]
	}
	if same {
		t.Error("the penultimate hidden state equals the final output")
	}
	if _, _, err := full.EncodePenultimate(ids, []int{5, 5}); err == nil || !strings.Contains(err.Error(), "text_projection") {
		t.Errorf("pooled without text_projection: %v", err)
	}
	if _, err := New(b, src, m.TextEncoder, Options{Projection: true}); err == nil || !strings.Contains(err.Error(), "projection") {
		t.Errorf("Projection for an encoder without one: %v", err)
	}
}
