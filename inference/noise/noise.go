package noise

import (
	"fmt"
	"math"
)

// Source is a stream of standard Gaussian samples.
type Source interface {
	// Fill writes len(dst) samples. Successive calls continue the stream.
	Fill(dst []float32)
}

// Generator names, as sdgen's --rng spells them.
const (
	SDFleet = "sdfleet"
	Torch   = "torch"
)

// New returns the named generator seeded with seed.
func New(name string, seed uint64) (Source, error) {
	switch name {
	case SDFleet, "":
		return NewSplitMix(seed), nil
	case Torch:
		return NewTorch(seed), nil
	default:
		return nil, fmt.Errorf("unknown noise generator %q: expected %q or %q", name, SDFleet, Torch)
	}
}

// SplitMix is the default generator: splitmix64 uniforms and the Box-Muller transform. Every
// operation is a float64 operation whose result is stored before the next, so no platform can
// fuse them differently.
type SplitMix struct {
	state uint64
	spare float64
	has   bool
}

// NewSplitMix returns the default generator seeded with seed.
func NewSplitMix(seed uint64) *SplitMix { return &SplitMix{state: seed} }

func (s *SplitMix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform is in (0, 1]: 53 random bits, never 0, so its logarithm is finite.
func (s *SplitMix) uniform() float64 {
	return float64(s.next()>>11+1) * (1.0 / (1 << 53))
}

// Fill implements Source.
func (s *SplitMix) Fill(dst []float32) {
	for i := range dst {
		if s.has {
			dst[i] = float32(s.spare)
			s.has = false
			continue
		}
		u1, u2 := s.uniform(), s.uniform()
		r := math.Sqrt(float64(-2 * math.Log(u1)))
		theta := float64(2*math.Pi) * u2
		dst[i] = float32(float64(r * math.Cos(theta)))
		s.spare = float64(r * math.Sin(theta))
		s.has = true
	}
}
