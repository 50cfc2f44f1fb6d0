package sampler

import (
	"fmt"
	"math"
)

// Names of the samplers, as the ImageGenerationJob API and sdgen's --sampler spell them.
const (
	DDIM           = "ddim"
	EulerAncestral = "euler-ancestral"
	DPMPP2MKarras  = "dpmpp-2m-karras"
)

// Names lists every sampler this package implements.
var Names = []string{DDIM, EulerAncestral, DPMPP2MKarras}

// NoiseSource fills dst with independent standard Gaussian samples. Ancestral samplers draw
// fresh noise from it at every step.
type NoiseSource interface {
	Fill(dst []float32)
}

// Sampler runs the reverse diffusion of one image. Its steps are used in order: for each step i
// from 0 to Steps()-1 the pipeline scales the latents by ModelInput's scale, evaluates the UNet
// at ModelInput's timestep, and calls Step with the (guided) noise prediction.
type Sampler interface {
	// Name is the sampler's API name.
	Name() string
	// Steps is the number of model evaluations.
	Steps() int
	// InitNoiseSigma is the standard deviation of the initial latents: unit Gaussian noise is
	// multiplied by it.
	InitNoiseSigma() float64
	// ModelInput is the timestep the UNet is evaluated at in step i and the factor the latents
	// are multiplied by to form its input.
	ModelInput(i int) (timestep float64, scale float64)
	// Step advances the latents x in place, given the UNet's noise prediction eps for step i.
	Step(i int, x, eps []float32, noise NoiseSource) error
}

// New returns the named sampler for the given number of steps on Stable Diffusion's schedule.
func New(name string, steps int) (Sampler, error) {
	return NewWithSchedule(name, steps, StableDiffusion())
}

// NewWithSchedule returns the named sampler on a given training schedule.
func NewWithSchedule(name string, steps int, sched Schedule) (Sampler, error) {
	n := len(sched.AlphasCumprod)
	if steps < 1 || steps > n {
		return nil, fmt.Errorf("steps must be from 1 to %d, got %d", n, steps)
	}
	switch name {
	case DDIM:
		ts, err := LeadingTimesteps(steps, n, 1)
		if err != nil {
			return nil, err
		}
		return &ddim{sched: sched, timesteps: ts, ratio: n / steps}, nil
	case EulerAncestral:
		return newEulerAncestral(sched, steps), nil
	case DPMPP2MKarras:
		return newDPMPP2M(sched, steps), nil
	default:
		return nil, fmt.Errorf("unknown sampler %q: expected one of %v", name, Names)
	}
}

func checkLengths(name string, i, steps int, x, eps []float32) error {
	if i < 0 || i >= steps {
		return fmt.Errorf("%s: step %d out of range [0, %d)", name, i, steps)
	}
	if len(x) != len(eps) {
		return fmt.Errorf("%s: latents have %d values but the noise prediction has %d", name, len(x), len(eps))
	}
	return nil
}

// ddim is DDIM with η = 0 (deterministic), "leading" spacing with steps offset 1, and the
// final ᾱ taken from the first training step (Stable Diffusion's set_alpha_to_one = false).
type ddim struct {
	sched     Schedule
	timesteps []int
	ratio     int
}

func (d *ddim) Name() string            { return DDIM }
func (d *ddim) Steps() int              { return len(d.timesteps) }
func (d *ddim) InitNoiseSigma() float64 { return 1 }
func (d *ddim) Timesteps() []int        { return append([]int(nil), d.timesteps...) }

func (d *ddim) ModelInput(i int) (float64, float64) { return float64(d.timesteps[i]), 1 }

func (d *ddim) Step(i int, x, eps []float32, _ NoiseSource) error {
	if err := checkLengths(DDIM, i, d.Steps(), x, eps); err != nil {
		return err
	}
	t := d.timesteps[i]
	prev := t - d.ratio
	aT := d.sched.AlphasCumprod[t]
	aPrev := d.sched.AlphasCumprod[0]
	if prev >= 0 {
		aPrev = d.sched.AlphasCumprod[prev]
	}
	sqrtAT, sqrt1mAT := math.Sqrt(aT), math.Sqrt(1-aT)
	sqrtAPrev, sqrt1mAPrev := math.Sqrt(aPrev), math.Sqrt(1-aPrev)
	for k := range x {
		e := float64(eps[k])
		x0 := (float64(x[k]) - sqrt1mAT*e) / sqrtAT
		x[k] = float32(sqrtAPrev*x0 + sqrt1mAPrev*e)
	}
	return nil
}

// sigmaSampler holds what the variance-exploding samplers share: the σ of each step (and a
// final 0) and the model timestep of each σ.
type sigmaSampler struct {
	sigmas    []float64 // len steps+1, last is 0
	timesteps []float64 // len steps
}

func (s *sigmaSampler) Steps() int        { return len(s.timesteps) }
func (s *sigmaSampler) Sigmas() []float64 { return append([]float64(nil), s.sigmas...) }
func (s *sigmaSampler) ModelInput(i int) (float64, float64) {
	sigma := s.sigmas[i]
	return s.timesteps[i], 1 / math.Sqrt(sigma*sigma+1)
}

// eulerAncestral is the Euler ancestral sampler over timesteps spaced linearly from the last
// training step to the first.
type eulerAncestral struct {
	sigmaSampler
	scratch []float32
}

func newEulerAncestral(sched Schedule, steps int) *eulerAncestral {
	n := len(sched.AlphasCumprod)
	e := &eulerAncestral{}
	for i := 0; i < steps; i++ {
		t := float64(n - 1)
		if steps > 1 {
			t = float64(n-1) * (1 - float64(i)/float64(steps-1))
		}
		e.timesteps = append(e.timesteps, t)
		e.sigmas = append(e.sigmas, sched.sigmaAt(t))
	}
	e.sigmas = append(e.sigmas, 0)
	return e
}

func (e *eulerAncestral) Name() string { return EulerAncestral }

func (e *eulerAncestral) InitNoiseSigma() float64 {
	return math.Sqrt(e.sigmas[0]*e.sigmas[0] + 1)
}

func (e *eulerAncestral) Step(i int, x, eps []float32, noise NoiseSource) error {
	if err := checkLengths(EulerAncestral, i, e.Steps(), x, eps); err != nil {
		return err
	}
	from, to := e.sigmas[i], e.sigmas[i+1]
	up := math.Sqrt(to * to * (from*from - to*to) / (from * from))
	down := math.Sqrt(to*to - up*up)
	// With an ε-predicting model the Euler derivative (x - x0)/σ is ε itself.
	dt := down - from
	for k := range x {
		x[k] = float32(float64(x[k]) + float64(eps[k])*dt)
	}
	if up > 0 {
		if noise == nil {
			return fmt.Errorf("%s: step %d needs a noise source", EulerAncestral, i)
		}
		if cap(e.scratch) < len(x) {
			e.scratch = make([]float32, len(x))
		}
		z := e.scratch[:len(x)]
		noise.Fill(z)
		for k := range x {
			x[k] = float32(float64(x[k]) + float64(z[k])*up)
		}
	}
	return nil
}

// dpmpp2m is DPM-Solver++(2M) on Karras sigmas: a second-order multistep solver in the data
// prediction, first order on its first and last steps.
type dpmpp2m struct {
	sigmaSampler
	oldDenoised []float32
}

func newDPMPP2M(sched Schedule, steps int) *dpmpp2m {
	d := &dpmpp2m{}
	d.sigmas = KarrasSigmas(steps, sched.SigmaMin(), sched.SigmaMax())
	for i := 0; i < steps; i++ {
		d.timesteps = append(d.timesteps, sched.sigmaToTimestep(d.sigmas[i]))
	}
	return d
}

func (d *dpmpp2m) Name() string            { return DPMPP2MKarras }
func (d *dpmpp2m) InitNoiseSigma() float64 { return d.sigmas[0] }

func (d *dpmpp2m) Step(i int, x, eps []float32, _ NoiseSource) error {
	if err := checkLengths(DPMPP2MKarras, i, d.Steps(), x, eps); err != nil {
		return err
	}
	sigma, next := d.sigmas[i], d.sigmas[i+1]
	firstOrder := i == 0 || next == 0 || d.oldDenoised == nil
	if d.oldDenoised == nil || len(d.oldDenoised) != len(x) {
		d.oldDenoised = make([]float32, len(x))
	}
	if next == 0 {
		// The last step lands on σ = 0: the result is the denoised estimate itself.
		for k := range x {
			x[k] = float32(float64(x[k]) - sigma*float64(eps[k]))
		}
		return nil
	}
	lambda := func(s float64) float64 { return -math.Log(s) }
	h := lambda(next) - lambda(sigma)
	ratio := next / sigma
	expm1 := math.Expm1(-h)
	var c0, c1 float64 = 1, 0
	if !firstOrder {
		hLast := lambda(sigma) - lambda(d.sigmas[i-1])
		r := hLast / h
		c0, c1 = 1+1/(2*r), 1/(2*r)
	}
	for k := range x {
		denoised := float64(x[k]) - sigma*float64(eps[k])
		dd := c0*denoised - c1*float64(d.oldDenoised[k])
		x[k] = float32(ratio*float64(x[k]) - expm1*dd)
		d.oldDenoised[k] = float32(denoised)
	}
	return nil
}
