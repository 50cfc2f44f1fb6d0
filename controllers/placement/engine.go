package placement

import "time"

// Engine chooses GPUs. It keeps the round-robin tie-break cursor across calls, so repeated
// single-image requests spread out; it is otherwise stateless and makes no API calls.
// An Engine is not safe for concurrent use.
type Engine struct {
	cfg Config
}

// Config tunes the engine. Zero values take the defaults.
type Config struct {
	// Headroom is the fraction of each GPU's memory never handed out (default 0.05).
	Headroom float64
	// SampleInterval is the node agents' sampling interval; a GPU whose heartbeat is older
	// than 3 intervals counts as fully loaded (default 1s).
	SampleInterval time.Duration
	// HotTemperatureCelsius is the temperature above which a GPU's load gets a penalty.
	HotTemperatureCelsius int32
}

// New returns an engine with the given configuration.
func New(cfg Config) *Engine { return &Engine{cfg: cfg} }

// Place decides where each of req.Images images goes. The decisions of one call account for
// each other: image i+1 sees the reservation of image i. An error names what is wrong with the
// request (for example a pinned GPU that is not in the snapshot).
func (e *Engine) Place(snap Snapshot, req Request) ([]Decision, error) {
	panic("not implemented")
}
