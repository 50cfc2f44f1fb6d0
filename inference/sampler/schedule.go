package sampler

import (
	"fmt"
	"math"
)

// Schedule is a discrete diffusion noise schedule: the cumulative signal fraction ᾱ_t of each
// of its training timesteps.
type Schedule struct {
	// AlphasCumprod[t] is ᾱ_t, the product of (1 - β_s) for s ≤ t.
	AlphasCumprod []float64
}

// Stable Diffusion 1.x/2.x/XL's training schedule: "scaled linear" betas from 0.00085 to 0.012
// over 1000 steps.
const (
	TrainTimesteps = 1000
	BetaStart      = 0.00085
	BetaEnd        = 0.012
)

// ScaledLinear is the schedule Stable Diffusion was trained with: β is linear in √β between
// √betaStart and √betaEnd.
func ScaledLinear(steps int, betaStart, betaEnd float64) Schedule {
	s := Schedule{AlphasCumprod: make([]float64, steps)}
	lo, hi := math.Sqrt(betaStart), math.Sqrt(betaEnd)
	prod := 1.0
	for i := 0; i < steps; i++ {
		b := lo + (hi-lo)*float64(i)/float64(steps-1)
		prod *= 1 - b*b
		s.AlphasCumprod[i] = prod
	}
	return s
}

// StableDiffusion is ScaledLinear(1000, 0.00085, 0.012).
func StableDiffusion() Schedule { return ScaledLinear(TrainTimesteps, BetaStart, BetaEnd) }

// Sigma is the noise level of timestep t in the variance-exploding view: √((1-ᾱ_t)/ᾱ_t).
func (s Schedule) Sigma(t int) float64 {
	a := s.AlphasCumprod[t]
	return math.Sqrt((1 - a) / a)
}

// SigmaMax and SigmaMin are the noise levels of the last and first training timesteps.
func (s Schedule) SigmaMax() float64 { return s.Sigma(len(s.AlphasCumprod) - 1) }

// SigmaMin is the noise level of the first training timestep.
func (s Schedule) SigmaMin() float64 { return s.Sigma(0) }

// sigmaToTimestep maps a noise level back to a (fractional) model timestep by interpolating
// log σ between the two neighbouring training timesteps, as k-diffusion does.
func (s Schedule) sigmaToTimestep(sigma float64) float64 {
	n := len(s.AlphasCumprod)
	logSigma := math.Log(sigma)
	if logSigma <= math.Log(s.Sigma(0)) {
		return 0
	}
	if logSigma >= math.Log(s.Sigma(n-1)) {
		return float64(n - 1)
	}
	lo := 0
	for lo+1 < n && math.Log(s.Sigma(lo+1)) <= logSigma {
		lo++
	}
	l, h := math.Log(s.Sigma(lo)), math.Log(s.Sigma(lo+1))
	w := (logSigma - l) / (h - l)
	return float64(lo) + w
}

// sigmaAt interpolates σ linearly between training timesteps for a fractional timestep.
func (s Schedule) sigmaAt(t float64) float64 {
	lo := int(math.Floor(t))
	if lo >= len(s.AlphasCumprod)-1 {
		return s.SigmaMax()
	}
	if lo < 0 {
		return s.SigmaMin()
	}
	w := t - float64(lo)
	return s.Sigma(lo)*(1-w) + s.Sigma(lo+1)*w
}

// KarrasSigmas are n noise levels from sigmaMax down to sigmaMin spaced as Karras et al. (2022)
// propose (ρ = 7), followed by a final 0.
func KarrasSigmas(n int, sigmaMin, sigmaMax float64) []float64 {
	const rho = 7.0
	out := make([]float64, n+1)
	maxInv, minInv := math.Pow(sigmaMax, 1/rho), math.Pow(sigmaMin, 1/rho)
	for i := 0; i < n; i++ {
		ramp := 0.0
		if n > 1 {
			ramp = float64(i) / float64(n-1)
		}
		out[i] = math.Pow(maxInv+ramp*(minInv-maxInv), rho)
	}
	return out
}

// LeadingTimesteps are the DDIM timesteps with "leading" spacing and the given offset: for 20
// steps and offset 1, 951, 901, ..., 1.
func LeadingTimesteps(steps, trainSteps, offset int) ([]int, error) {
	if steps < 1 || steps > trainSteps {
		return nil, fmt.Errorf("steps must be from 1 to %d, got %d", trainSteps, steps)
	}
	ratio := trainSteps / steps
	out := make([]int, steps)
	for i := range out {
		out[i] = (steps-1-i)*ratio + offset
	}
	return out, nil
}
