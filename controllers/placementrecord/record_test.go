package placementrecord

import (
	"strings"
	"testing"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placement"
)

const gib = int64(1) << 30

func TestOf(t *testing.T) {
	chosen := placement.GPU{Node: "n", Index: 1, UUID: "GPU-1"}
	for _, tc := range []struct {
		name      string
		d         placement.Decision
		rankedBy  string
		winner    string
		loserWhys []string
	}{
		{
			name: "by load",
			d: placement.Decision{Policy: sdfleetv1alpha1.PlacementLeastLoaded, GPU: chosen, Load: 0.1, Alternatives: []placement.Candidate{
				{UUID: "GPU-3", Load: 0.3, Fits: true},
				{UUID: "GPU-0", Load: 0.1, Fits: true},
				{UUID: "GPU-2", Load: 0.9},
				{UUID: "GPU-4", Load: 0.2, Fits: true, Avoided: true},
				{UUID: "GPU-5", Load: 1, Unusable: "unhealthy"},
			}},
			rankedBy: RankedByLoad,
			winner:   "the lowest effective memory load (10%",
			loserWhys: []string{"more loaded (30% against 10%)", "as loaded (10%): the tie went to the next GPU in turn",
				"no room: no free slot or not 4.0 GiB of memory free", "the image failed on it before, and another GPU had room"},
		},
		{
			name: "by expected finish",
			d: placement.Decision{Policy: sdfleetv1alpha1.PlacementLeastLoaded, GPU: chosen, Load: 0.5, ExpectedFinish: 2 * time.Second,
				Alternatives: []placement.Candidate{
					{UUID: "GPU-0", Load: 0.1, Fits: true, ExpectedFinish: 6 * time.Second},
					{UUID: "GPU-2", Load: 0.7, Fits: true, ExpectedFinish: 2 * time.Second},
				}},
			rankedBy:  RankedByFinish,
			winner:    "the earliest expected finish (2.0s",
			loserWhys: []string{"expected to finish later (6.0s against 2.0s)", "expected to finish as early (2.0s) but more loaded (70% against 50%)"},
		},
		{
			name:      "round robin",
			d:         placement.Decision{Policy: sdfleetv1alpha1.PlacementRoundRobin, GPU: chosen, Alternatives: []placement.Candidate{{UUID: "GPU-0", Fits: true}}},
			rankedBy:  RankedByLoad,
			winner:    "next in the round-robin order",
			loserWhys: []string{"not its turn in the round-robin order"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode(Encode(Of(tc.d, 4*gib)))
			if err != nil {
				t.Fatal(err)
			}
			if r.RankedBy != tc.rankedBy || r.Chosen.UUID != "GPU-1" || r.Chosen.Node != "n" || *r.Chosen.Index != 1 ||
				!strings.Contains(r.Chosen.Why, tc.winner) {
				t.Errorf("record %+v: want ranked by %s, GPU-1 on n chosen for %q", r, tc.rankedBy, tc.winner)
			}
			if len(r.Others) > MaxOthers || len(r.Others) != min(len(tc.d.Alternatives), MaxOthers) {
				t.Errorf("%d others, want %d", len(r.Others), min(len(tc.d.Alternatives), MaxOthers))
			}
			for i, want := range tc.loserWhys {
				if r.Others[i].Why != want {
					t.Errorf("other %d (%s): %q, want %q", i, r.Others[i].UUID, r.Others[i].Why, want)
				}
			}
		})
	}
}

func TestEncodeIsBounded(t *testing.T) {
	d := placement.Decision{GPU: placement.GPU{UUID: strings.Repeat("G", 600)}}
	for range 4 {
		d.Alternatives = append(d.Alternatives, placement.Candidate{UUID: strings.Repeat("H", 600), Fits: true})
	}
	value := Encode(Of(d, gib))
	if len(value) == 0 || len(value) > MaxBytes {
		t.Fatalf("encoded %d bytes, want 1 to %d", len(value), MaxBytes)
	}
	r, err := Decode(value)
	if err != nil || len(r.Others) >= 4 {
		t.Errorf("Decode: %v, %d others; want fewer than 4 kept", err, len(r.Others))
	}
	if _, err := Decode(`{"policy":"Pack"}`); err == nil || !strings.Contains(err.Error(), "names no chosen GPU") {
		t.Errorf("Decode of a record without a winner: %v", err)
	}
	if _, err := Decode(`not json`); err == nil || !strings.Contains(err.Error(), Annotation) {
		t.Errorf("Decode of garbage: %v", err)
	}
}
