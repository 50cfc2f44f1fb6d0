package sampler

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScheduleClosedForm(t *testing.T) {
	s := StableDiffusion()
	// σ_max and σ_min of Stable Diffusion's scaled-linear schedule, as published by the common
	// Python tools (14.6146 and 0.02917).
	if got := s.SigmaMax(); math.Abs(got-14.6146) > 1e-4 {
		t.Errorf("σ_max = %v, want 14.6146", got)
	}
	if got := s.SigmaMin(); math.Abs(got-0.02917) > 1e-5 {
		t.Errorf("σ_min = %v, want 0.02917", got)
	}
	if got := len(s.AlphasCumprod); got != 1000 {
		t.Fatalf("schedule has %d steps, want 1000", got)
	}
	for i := 1; i < len(s.AlphasCumprod); i++ {
		if s.AlphasCumprod[i] >= s.AlphasCumprod[i-1] {
			t.Fatalf("ᾱ is not decreasing at %d", i)
		}
	}
}

func TestLeadingTimesteps(t *testing.T) {
	cases := []struct {
		steps int
		want  []int
	}{
		{1, []int{1}},
		{4, []int{751, 501, 251, 1}},
		{20, []int{951, 901, 851, 801, 751, 701, 651, 601, 551, 501, 451, 401, 351, 301, 251, 201, 151, 101, 51, 1}},
	}
	for _, c := range cases {
		got, err := LeadingTimesteps(c.steps, 1000, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%d steps: got %v, want %v", c.steps, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%d steps: got %v, want %v", c.steps, got, c.want)
			}
		}
	}
	if _, err := LeadingTimesteps(0, 1000, 1); err == nil {
		t.Error("0 steps accepted")
	}
}

func TestKarrasSigmas20(t *testing.T) {
	// (σ_max^(1/7) + i/19 (σ_min^(1/7) - σ_max^(1/7)))^7 for i = 0..19, evaluated independently
	// in double precision from σ_max = 14.614641229333646 and σ_min = 0.029167158151720367.
	want := []float64{14.614641, 11.725365, 9.340203, 7.383617, 5.789412, 4.499835, 3.464747,
		2.64084, 1.990915, 1.483211, 1.090786, 0.790946, 0.564721, 0.39639, 0.273038, 0.184168,
		0.121341, 0.07786, 0.048481, 0.029167, 0}
	s := StableDiffusion()
	got := KarrasSigmas(20, s.SigmaMin(), s.SigmaMax())
	if len(got) != len(want) {
		t.Fatalf("got %d sigmas, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			t.Errorf("σ[%d] = %.7f, want %.6f", i, got[i], want[i])
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New("plms", 20); err == nil || !strings.Contains(err.Error(), "plms") {
		t.Errorf("unknown sampler: err = %v", err)
	}
	for _, name := range Names {
		if _, err := New(name, 0); err == nil {
			t.Errorf("%s accepted 0 steps", name)
		}
		s, err := New(name, 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Step(0, make([]float32, 3), make([]float32, 4), gaussian{}); err == nil {
			t.Errorf("%s accepted latents and prediction of different lengths", name)
		}
		if err := s.Step(4, make([]float32, 3), make([]float32, 3), gaussian{}); err == nil {
			t.Errorf("%s accepted a step out of range", name)
		}
	}
}

// gaussian is a seeded standard normal source for the tests.
type gaussian struct{ r *rand.Rand }

func (g gaussian) Fill(dst []float32) {
	for i := range dst {
		dst[i] = float32(g.r.NormFloat64())
	}
}

// TestOracleDenoising runs every sampler with a model that knows the clean latents x0 and
// predicts exactly the noise that separates the current latents from them. A correct sampler
// must then end at x0 (DDIM within the noise of its last ᾱ, which is not 1).
func TestOracleDenoising(t *testing.T) {
	const n = 64
	for _, name := range Names {
		for _, steps := range []int{1, 2, 20, 50} {
			if name == DDIM && steps == 1 {
				// "Leading" spacing puts a single DDIM step at t = 1, which by design treats the
				// initial noise as almost clean: there is nothing for an oracle to converge to.
				continue
			}
			r := rand.New(rand.NewPCG(1, 2))
			src := gaussian{r}
			x0 := make([]float64, n)
			for i := range x0 {
				x0[i] = r.Float64()*2 - 1
			}
			s, err := New(name, steps)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, n)
			src.Fill(x)
			for i := range x {
				x[i] = float32(float64(x[i]) * s.InitNoiseSigma())
			}
			eps := make([]float32, n)
			sched := StableDiffusion()
			for i := 0; i < s.Steps(); i++ {
				ts, scale := s.ModelInput(i)
				for k := range x {
					in := float64(x[k]) * scale
					if name == DDIM {
						a := sched.AlphasCumprod[int(ts)]
						eps[k] = float32((in - math.Sqrt(a)*x0[k]) / math.Sqrt(1-a))
					} else {
						// Variance-exploding view: x = x0 + σ ε, with σ recovered from the scale.
						sigma := math.Sqrt(1/(scale*scale) - 1)
						eps[k] = float32((float64(x[k]) - x0[k]) / sigma)
					}
				}
				if err := s.Step(i, x, eps, src); err != nil {
					t.Fatal(err)
				}
			}
			tol := 1e-4
			if name == DDIM {
				tol = 0.15 // the last DDIM step lands on ᾱ_0 = 0.99915, not on 1
			}
			for k := range x {
				if math.IsNaN(float64(x[k])) || math.Abs(float64(x[k])-x0[k]) > tol {
					t.Fatalf("%s, %d steps: x[%d] = %v, want %v ± %v", name, steps, k, x[k], x0[k], tol)
				}
			}
		}
	}
}

func TestEulerAncestralTimesteps(t *testing.T) {
	s, err := New(EulerAncestral, 20)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.ModelInput(0)
	last, _ := s.ModelInput(19)
	if first != 999 || last != 0 {
		t.Errorf("timesteps run from %v to %v, want 999 to 0", first, last)
	}
	sched := StableDiffusion()
	if got, want := s.InitNoiseSigma(), math.Sqrt(sched.SigmaMax()*sched.SigmaMax()+1); math.Abs(got-want) > 1e-12 {
		t.Errorf("init noise sigma = %v, want %v", got, want)
	}
}

func TestDPMPP2MTimestepsFollowSigmas(t *testing.T) {
	s, err := New(DPMPP2MKarras, 20)
	if err != nil {
		t.Fatal(err)
	}
	prev := math.Inf(1)
	for i := 0; i < 20; i++ {
		ts, _ := s.ModelInput(i)
		if ts >= prev || ts < 0 || ts > 999 {
			t.Fatalf("timestep %d = %v after %v: want decreasing within [0, 999]", i, ts, prev)
		}
		prev = ts
	}
	if first, _ := s.ModelInput(0); math.Abs(first-999) > 1e-9 {
		t.Errorf("first timestep %v, want 999 (σ_max)", first)
	}
	if last, _ := s.ModelInput(19); math.Abs(last) > 1e-9 {
		t.Errorf("last timestep %v, want 0 (σ_min)", last)
	}
}
