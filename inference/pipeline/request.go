package pipeline

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sdfleet/sdfleet/inference/noise"
	"github.com/sdfleet/sdfleet/inference/sampler"
)

// Limits of a request.
const (
	MaxSide  = 4096
	MaxSteps = 1000
)

// Request is one image to generate.
type Request struct {
	Prompt         string
	NegativePrompt string
	// Width and Height in pixels, multiples of 8.
	Width, Height int
	Steps         int
	// Guidance is the classifier-free guidance scale; at 1 or below the
	// unconditional pass is skipped, as diffusers does.
	Guidance float64
	// Sampler is one of sampler.Names.
	Sampler string
	Seed    uint64
	// RNG is noise.SDFleet (default) or noise.Torch.
	RNG string
}

// Validate checks every field and returns the first problem as an
// *InputError.
func (r Request) Validate() error {
	switch {
	case strings.TrimSpace(r.Prompt) == "":
		return &InputError{"prompt", "must not be empty"}
	case r.Width < 8 || r.Width > MaxSide || r.Width%8 != 0:
		return &InputError{"width", fmt.Sprintf("%d: expected a multiple of 8 from 8 to %d", r.Width, MaxSide)}
	case r.Height < 8 || r.Height > MaxSide || r.Height%8 != 0:
		return &InputError{"height", fmt.Sprintf("%d: expected a multiple of 8 from 8 to %d", r.Height, MaxSide)}
	case r.Steps < 1 || r.Steps > MaxSteps:
		return &InputError{"steps", fmt.Sprintf("%d: expected 1 to %d", r.Steps, MaxSteps)}
	case r.Guidance < 0 || r.Guidance > 100 || r.Guidance != r.Guidance:
		return &InputError{"guidance", fmt.Sprintf("%v: expected 0 to 100", r.Guidance)}
	case !slices.Contains(sampler.Names, r.Sampler):
		return &InputError{"sampler", fmt.Sprintf("%q: expected one of %s", r.Sampler, strings.Join(sampler.Names, ", "))}
	case r.RNG != "" && r.RNG != noise.SDFleet && r.RNG != noise.Torch:
		return &InputError{"rng", fmt.Sprintf("%q: expected %s or %s", r.RNG, noise.SDFleet, noise.Torch)}
	}
	return nil
}
