package placement

import (
	"fmt"
	"math"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// Defaults for the zero values of Config.
const (
	DefaultHeadroom              = 0.05
	DefaultSampleInterval        = time.Second
	DefaultHotTemperatureCelsius = 85
	DefaultTemperaturePenalty    = 0.15
	DefaultMaxAlternatives       = 3
)

// staleIntervals is how many sampling intervals a heartbeat may be old before its GPU counts as
// fully loaded.
const staleIntervals = 3

// Engine chooses GPUs. It keeps the round-robin tie-break cursor across calls, so repeated
// single-image requests spread out; it is otherwise stateless and makes no API calls.
// An Engine is not safe for concurrent use.
type Engine struct {
	cfg Config
	// ranking is what the current call ranks by, for the alternatives' expected finishes.
	ranking ranking

	// The last chosen GPU, in (node, index, UUID) order; ties go to the next one after it.
	cursorSet   bool
	cursorNode  string
	cursorIndex int32
	cursorUUID  string
	cursorPos   int32

	// The index of the last snapshot's GPU list, rebuilt only when the list changes: byUUID
	// maps UUIDs to positions, rank gives each position's place in (node, index, UUID) order
	// and byRank the reverse; uuids, rankNodes and rankIndexes are what they were built from.
	byUUID      map[string]int32
	uuids       []string
	rankNodes   []string
	rankIndexes []int32
	rank        []int32
	byRank      []int32

	// Working buffers, kept between calls so that steady-state decisions do not allocate.
	reservedAt []int64
	marks      []uint8
	state      []gpuState
	cands      []int32
	unusable   []int32
	top        []int32
	busy       []int32
	rrOrder    []rrItem
}

// Config tunes the engine. Zero values take the defaults; values out of range (see Validate)
// also take the defaults, so a bad configuration never makes the engine misbehave.
type Config struct {
	// Headroom is the fraction of each GPU's memory never handed out (default 0.05).
	Headroom float64
	// SampleInterval is the node agents' sampling interval; a GPU whose heartbeat is older
	// than 3 intervals counts as fully loaded (default 1s).
	SampleInterval time.Duration
	// HotTemperatureCelsius is the temperature above which a GPU's load gets a penalty
	// (default 85).
	HotTemperatureCelsius int32
	// TemperaturePenalty is what a hot GPU's load is raised by when GPUs are compared (default
	// 0.15, i.e. 15 percentage points); with measured speeds its expected finish is stretched
	// by the same fraction. Pack treats it the other way round, as a GPU less worth filling.
	TemperaturePenalty float64
	// MaxAlternatives is how many other GPUs a decision lists (default 3; negative: none).
	MaxAlternatives int
	// NoWaitForFasterGPU makes LeastLoaded with measured speeds always use a GPU with room,
	// instead of waiting when a busy GPU is expected to finish the image sooner.
	NoWaitForFasterGPU bool
}

// Validate reports the first field of c that is out of range. New replaces such fields with
// their defaults, so calling Validate is only needed to tell the user.
func (c Config) Validate() error {
	switch {
	case c.Headroom < 0 || c.Headroom >= 1 || math.IsNaN(c.Headroom):
		return fmt.Errorf("placement config: Headroom is %v; want a fraction in [0, 1)", c.Headroom)
	case c.SampleInterval < 0:
		return fmt.Errorf("placement config: SampleInterval is %v; want a positive duration", c.SampleInterval)
	case c.TemperaturePenalty < 0 || math.IsNaN(c.TemperaturePenalty) || math.IsInf(c.TemperaturePenalty, 0):
		return fmt.Errorf("placement config: TemperaturePenalty is %v; want 0 or more", c.TemperaturePenalty)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Headroom <= 0 || c.Headroom >= 1 || math.IsNaN(c.Headroom) {
		c.Headroom = DefaultHeadroom
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.HotTemperatureCelsius == 0 {
		c.HotTemperatureCelsius = DefaultHotTemperatureCelsius
	}
	if c.TemperaturePenalty <= 0 || math.IsNaN(c.TemperaturePenalty) || math.IsInf(c.TemperaturePenalty, 0) {
		c.TemperaturePenalty = DefaultTemperaturePenalty
	}
	if c.MaxAlternatives == 0 {
		c.MaxAlternatives = DefaultMaxAlternatives
	}
	if c.MaxAlternatives < 0 {
		c.MaxAlternatives = 0
	}
	return c
}

// New returns an engine with the given configuration.
func New(cfg Config) *Engine {
	return &Engine{cfg: cfg.withDefaults(), byUUID: map[string]int32{}}
}

// Config returns the configuration in effect, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Place decides where each of req.Images images goes. The decisions of one call account for
// each other: image i+1 sees the reservation of image i. An error names what is wrong with the
// request (for example a pinned GPU that is not in the snapshot).
func (e *Engine) Place(snap Snapshot, req Request) ([]Decision, error) {
	return e.PlaceInto(nil, snap, req)
}

// PlaceInto is Place writing into dst, whose elements (and their Alternatives) are reused:
// a caller that passes the previous result back gets its decisions without allocation. The
// result aliases dst; it is valid until the next PlaceInto with the same dst.
func (e *Engine) PlaceInto(dst []Decision, snap Snapshot, req Request) ([]Decision, error) {
	policy, err := checkRequest(req)
	if err != nil {
		return dst[:0], err
	}
	if req.Images == 0 {
		return dst[:0], nil
	}
	if err := e.index(snap.GPUs); err != nil {
		return dst[:0], err
	}
	if len(snap.GPUs) > 0 && snap.Now.IsZero() {
		return dst[:0], fmt.Errorf("snapshot.Now is zero; set it to the decision time")
	}
	r, err := e.prepare(snap, req, policy)
	if err != nil {
		return dst[:0], err
	}
	e.ranking = r
	e.startCursor(snap.GPUs)
	dst = e.grow(dst, req.Images)

	if reason, none := e.noUsableGPU(snap); none {
		// The CPU is for clusters without GPUs. GPUs that are all unhealthy or silent for a
		// moment (agents restarting, a network blip) mean wait: sending every image to the CPU
		// at once would start thousands of slow pods that the GPUs would have finished sooner.
		outcome := OutcomeWait
		if req.AllowCPUFallback && len(snap.GPUs) == 0 {
			outcome = OutcomeCPU
		}
		e.fillAll(dst, 0, Decision{Outcome: outcome, Policy: policy, Reason: reason})
		return dst, nil
	}
	if len(e.cands) == 0 {
		e.fillAll(dst, 0, Decision{Outcome: OutcomeWait, Policy: policy, Reason: e.noCandidateReason(snap)})
		return dst, nil
	}

	switch policy {
	case sdfleetv1alpha1.PlacementRoundRobin:
		e.placeRoundRobin(dst, snap, req, policy)
	default:
		e.placeGreedy(dst, snap, req, policy, r)
	}
	return dst, nil
}

// checkRequest validates req and returns its policy, the default filled in.
func checkRequest(req Request) (sdfleetv1alpha1.PlacementPolicy, error) {
	if req.Images < 0 {
		return "", fmt.Errorf("request.Images is %d; want 0 or more", req.Images)
	}
	if req.Backlog < 0 {
		return "", fmt.Errorf("request.Backlog is %d; want 0 or more", req.Backlog)
	}
	if req.MemoryPerImage < 0 {
		return "", fmt.Errorf("request.MemoryPerImage is %d; want 0 or more bytes", req.MemoryPerImage)
	}
	policy := req.Policy
	switch policy {
	case "":
		policy = sdfleetv1alpha1.PlacementLeastLoaded
	case sdfleetv1alpha1.PlacementLeastLoaded, sdfleetv1alpha1.PlacementRoundRobin, sdfleetv1alpha1.PlacementPack:
	case sdfleetv1alpha1.PlacementPinned:
		if len(req.Pinned) == 0 {
			return "", fmt.Errorf("request.Pinned is empty; policy Pinned needs at least one GPU")
		}
	default:
		return "", fmt.Errorf("request.Policy is %q; want one of LeastLoaded, RoundRobin, Pack, Pinned", policy)
	}
	for i, ref := range req.Pinned {
		if ref.UUID == "" && ref.Index == nil {
			return "", fmt.Errorf("request.Pinned[%d]: set UUID or Index", i)
		}
		if ref.UUID == "" && ref.Node == "" {
			return "", fmt.Errorf("request.Pinned[%d]: Node is empty; a GPU named by index needs its node", i)
		}
	}
	return policy, nil
}
