package placementrecord

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/placement"
)

// Annotation is the image pod's annotation that holds the Record as JSON.
const Annotation = "sdfleet.io/placement-candidates"

// Bounds of a Record.
const (
	MaxOthers = 4
	MaxBytes  = 2048
)

// Ranking names what the decision ranked GPUs by.
const (
	RankedByFinish = "expected-finish"
	RankedByLoad   = "memory-load"
)

// GPU is one GPU of a decision.
type GPU struct {
	UUID string `json:"uuid"`
	Node string `json:"node,omitempty"`
	// Index is the GPU's index on its node; only known for the chosen GPU.
	Index *int32 `json:"index,omitempty"`
	// LoadPercent is the effective memory load (live use plus reservations) the decision saw.
	LoadPercent int32 `json:"loadPercent"`
	// ExpectedFinishSeconds is how long the GPU would take to finish the image after the work
	// already on it, when speeds were known.
	ExpectedFinishSeconds float64 `json:"expectedFinishSeconds,omitempty"`
	// Why says why it won, or why it lost.
	Why string `json:"why"`
}

// Record is one placement decision.
type Record struct {
	Policy   sdfleetv1alpha1.PlacementPolicy `json:"policy"`
	RankedBy string                          `json:"rankedBy"`
	Chosen   GPU                             `json:"chosen"`
	Others   []GPU                           `json:"others,omitempty"`
}

// Of describes decision d, a GPU outcome, for an image of bytes.
func Of(d placement.Decision, bytes int64) Record {
	byFinish := d.ExpectedFinish > 0
	r := Record{Policy: d.Policy, RankedBy: RankedByLoad}
	if byFinish {
		r.RankedBy = RankedByFinish
	}
	index := d.GPU.Index
	r.Chosen = GPU{UUID: d.GPU.UUID, Node: d.GPU.Node, Index: &index, LoadPercent: percent(d.Load),
		ExpectedFinishSeconds: seconds(d.ExpectedFinish)}
	r.Chosen.Why = winnerWhy(d, byFinish)
	for _, c := range d.Alternatives {
		if len(r.Others) == MaxOthers {
			break
		}
		other := GPU{UUID: c.UUID, LoadPercent: percent(c.Load)}
		if byFinish {
			other.ExpectedFinishSeconds = seconds(c.ExpectedFinish)
		}
		other.Why = loserWhy(d, c, byFinish, bytes)
		r.Others = append(r.Others, other)
	}
	return r
}

func winnerWhy(d placement.Decision, byFinish bool) string {
	load := fmt.Sprintf("%d%%", percent(d.Load))
	switch d.Policy {
	case sdfleetv1alpha1.PlacementRoundRobin:
		return "next in the round-robin order of the GPUs sorted by load (load " + load + ")"
	case sdfleetv1alpha1.PlacementPack:
		return "the most loaded GPU the image still fits on (load " + load + "), keeping the others free"
	case sdfleetv1alpha1.PlacementPinned:
		if byFinish {
			return fmt.Sprintf("among the pinned GPUs, the earliest expected finish (%.1fs)", seconds(d.ExpectedFinish))
		}
		return "among the pinned GPUs, the lowest effective memory load (" + load + ")"
	}
	if byFinish {
		return fmt.Sprintf("the earliest expected finish (%.1fs, the work already on it plus this image at its learned speed)", seconds(d.ExpectedFinish))
	}
	return "the lowest effective memory load (" + load + ", live use plus the images placed and not yet visible)"
}

func loserWhy(d placement.Decision, c placement.Candidate, byFinish bool, bytes int64) string {
	switch {
	case c.Unusable != "":
		return "not usable: " + c.Unusable
	case !c.Fits:
		return fmt.Sprintf("no room: no free slot or not %s of memory free", inGiB(bytes))
	case c.Avoided:
		return "the image failed on it before, and another GPU had room"
	}
	switch d.Policy {
	case sdfleetv1alpha1.PlacementRoundRobin:
		return "not its turn in the round-robin order"
	case sdfleetv1alpha1.PlacementPack:
		return fmt.Sprintf("less loaded (%d%% against %d%%): kept free", percent(c.Load), percent(d.Load))
	}
	// Ties on the ranking go to the lower load, then to the next GPU in turn.
	if byFinish && c.ExpectedFinish > 0 {
		later, as := seconds(c.ExpectedFinish), seconds(d.ExpectedFinish)
		switch {
		case c.ExpectedFinish > d.ExpectedFinish && later > as:
			return fmt.Sprintf("expected to finish later (%.1fs against %.1fs)", later, as)
		case c.Load > d.Load:
			return fmt.Sprintf("expected to finish as early (%.1fs) but more loaded (%d%% against %d%%)", later, percent(c.Load), percent(d.Load))
		}
		return fmt.Sprintf("expected to finish as early (%.1fs) and as loaded: the tie went to the next GPU in turn", later)
	}
	if c.Load > d.Load {
		return fmt.Sprintf("more loaded (%d%% against %d%%)", percent(c.Load), percent(d.Load))
	}
	return fmt.Sprintf("as loaded (%d%%): the tie went to the next GPU in turn", percent(c.Load))
}

func inGiB(bytes int64) string {
	return fmt.Sprintf("%.1f GiB", float64(bytes)/float64(int64(1)<<30))
}

func percent(load float64) int32 {
	if math.IsNaN(load) || load < 0 {
		return 0
	}
	return int32(math.Min(100, math.Round(load*100)))
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

// Encode is r as the annotation's value, dropping other GPUs from the end, then shortening the
// reasons, until it fits in MaxBytes.
func Encode(r Record) string {
	for {
		data, err := json.Marshal(r)
		if err == nil && len(data) <= MaxBytes {
			return string(data)
		}
		switch {
		case len(r.Others) > 0:
			r.Others = r.Others[:len(r.Others)-1]
		case len(r.Chosen.Why) > 64:
			r.Chosen.Why = r.Chosen.Why[:64]
		default:
			return ""
		}
	}
}

// Decode reads the annotation's value.
func Decode(value string) (Record, error) {
	var r Record
	dec := json.NewDecoder(strings.NewReader(value))
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	if r.Chosen.UUID == "" {
		return Record{}, fmt.Errorf("annotation %s: names no chosen GPU", Annotation)
	}
	return r, nil
}
