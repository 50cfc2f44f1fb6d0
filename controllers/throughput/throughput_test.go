package throughput

import (
	"math"
	"testing"
	"time"

	"github.com/sdfleet/sdfleet/controllers/placement"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestObserveNormalisesBySharingWorkAndForeignLoad(t *testing.T) {
	for _, tc := range []struct {
		name        string
		duration    time.Duration
		work        float64
		concurrency float64
		foreignPct  int32
		want        float64
	}{
		{"alone", 10 * time.Second, 5, 1, 0, 2},
		{"two images shared the GPU", 10 * time.Second, 5, 2, 0, 1},
		{"concurrency below one counts as one", 10 * time.Second, 5, 0, 0, 2},
		{"half the GPU taken by other work", 10 * time.Second, 5, 1, 50, 1},
		{"no duration: no sample", 0, 5, 1, 0, 0},
		{"no work: no sample", time.Second, 0, 1, 0, 0},
		{"NaN work: no sample", time.Second, math.NaN(), 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLearner(0)
			l.Describe(Figures{UUID: "g", UtilizationPercent: tc.foreignPct, SampledFrom: t0, Now: t0})
			got := l.Observe(Finish{UUID: "g", Duration: tc.duration, Work: tc.work, Concurrency: tc.concurrency, At: t0.Add(time.Minute)})
			if !near(got, tc.want) {
				t.Fatalf("sample %v, want %v", got, tc.want)
			}
			sp := l.Speed("g")
			if tc.want == 0 {
				if sp.Source != Nominal {
					t.Errorf("speed %+v after no sample, want Nominal", sp)
				}
				return
			}
			if sp.Source != Measured || sp.Samples != 1 || !near(sp.SecondsPerMegapixelStep, tc.want) {
				t.Errorf("speed %+v, want Measured %v from 1 sample", sp, tc.want)
			}
		})
	}
}

func TestMovingAverage(t *testing.T) {
	l := NewLearner(0.5)
	for _, d := range []time.Duration{4 * time.Second, 8 * time.Second, 8 * time.Second} {
		l.Observe(Finish{UUID: "g", Duration: d, Work: 1, Concurrency: 1})
	}
	// 4, then 4 + 0.5(8-4) = 6, then 6 + 0.5(8-6) = 7.
	if sp := l.Speed("g"); !near(sp.SecondsPerMegapixelStep, 7) || sp.Samples != 3 {
		t.Errorf("speed %+v, want 7 s per megapixel-step from 3 samples", sp)
	}
}

func TestFallbacks(t *testing.T) {
	l := NewLearner(0)
	for _, g := range []struct{ uuid, product string }{{"a1", "A"}, {"a2", "A"}, {"a3", "A"}, {"b1", "B"}, {"b2", "B"}, {"c1", "C"}} {
		l.Describe(Figures{UUID: g.uuid, Product: g.product})
	}
	if sp := l.Speed("a3"); sp.Source != Nominal || sp.SecondsPerMegapixelStep != NominalSecondsPerMegapixelStep {
		t.Fatalf("nothing measured: %+v, want the nominal figure", sp)
	}
	l.Observe(Finish{UUID: "a1", Duration: 1 * time.Second, Work: 1})
	l.Observe(Finish{UUID: "a2", Duration: 3 * time.Second, Work: 1})
	l.Observe(Finish{UUID: "b1", Duration: 10 * time.Second, Work: 1})
	for _, tc := range []struct {
		uuid   string
		want   float64
		source Source
	}{
		{"a1", 1, Measured},
		{"a3", 2, SameProduct}, // median of a1 and a2
		{"b2", 10, SameProduct},
		{"c1", 3, Fleet},      // median of 1, 3, 10
		{"unknown", 3, Fleet}, // never described
	} {
		if sp := l.Speed(tc.uuid); sp.Source != tc.source || !near(sp.SecondsPerMegapixelStep, tc.want) {
			t.Errorf("%s: %+v, want %v from %s", tc.uuid, sp, tc.want, tc.source)
		}
	}
}

func TestRestoreOnlyFillsUnmeasuredGPUs(t *testing.T) {
	l := NewLearner(0)
	l.Observe(Finish{UUID: "measured", Duration: 2 * time.Second, Work: 1})
	l.Restore("measured", 9, 40)
	l.Restore("restored", 5, 40)
	l.Restore("bad", math.Inf(1), 1)
	if sp := l.Speed("measured"); !near(sp.SecondsPerMegapixelStep, 2) || sp.Samples != 1 {
		t.Errorf("measured GPU: %+v, want its own 2 s from 1 sample", sp)
	}
	if sp := l.Speed("restored"); sp.Source != Measured || !near(sp.SecondsPerMegapixelStep, 5) || sp.Samples != 40 {
		t.Errorf("restored GPU: %+v, want 5 s from 40 samples", sp)
	}
	if _, ok := l.Measured()["bad"]; ok {
		t.Errorf("an infinite figure was restored")
	}
	l.Forget("restored")
	if sp := l.Speed("restored"); sp.Source == Measured {
		t.Errorf("a forgotten GPU is still measured: %+v", sp)
	}
}

func TestForeignUtilisationCountsOnlyWithoutOurImages(t *testing.T) {
	l := NewLearner(0)
	// A sample taken while no image of ours ran: 50% foreign.
	l.Describe(Figures{UUID: "g", UtilizationPercent: 50, SampledFrom: t0, Now: t0.Add(time.Second)})
	// Our image runs, the GPU reads 100%: that is ours, not foreign.
	l.Describe(Figures{UUID: "g", UtilizationPercent: 100, SampledFrom: t0.Add(time.Second), Ours: true, Now: t0.Add(2 * time.Second)})
	// It finished at 3s; a sample whose period began before that still includes it.
	l.Observe(Finish{UUID: "g", Duration: 4 * time.Second, Work: 1, At: t0.Add(3 * time.Second)})
	l.Describe(Figures{UUID: "g", UtilizationPercent: 100, SampledFrom: t0.Add(2 * time.Second), Now: t0.Add(4 * time.Second)})
	gpus := []placement.GPU{{UUID: "g"}}
	l.Annotate(gpus, nil, t0, 1)
	// Learned clean speed: 4 s x (1 - 0.5) = 2 s; now 2 / (1 - 0.5) = 4 s per image.
	if !near(gpus[0].ImagesPerSecond, 0.25) {
		t.Fatalf("images per second %v, want 0.25 (foreign share still 50%%)", gpus[0].ImagesPerSecond)
	}
	// A sample of a period after our last image: the foreign share is now 20%.
	l.Describe(Figures{UUID: "g", UtilizationPercent: 20, SampledFrom: t0.Add(5 * time.Second), Now: t0.Add(6 * time.Second)})
	l.Annotate(gpus, nil, t0, 1)
	if !near(gpus[0].ImagesPerSecond, 0.8/2) {
		t.Errorf("images per second %v, want 0.4", gpus[0].ImagesPerSecond)
	}
}

func TestAnnotateQueuedWork(t *testing.T) {
	l := NewLearner(0)
	l.Observe(Finish{UUID: "g", Duration: 10 * time.Second, Work: 10}) // 1 s per megapixel-step
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		items []Item
		work  float64
		want  float64
	}{
		{"idle", nil, 10, 0},
		{"one reserved image counts whole", []Item{{Work: 10}}, 10, 1},
		{"a bigger image counts by its work", []Item{{Work: 20}}, 10, 2},
		{"one running alone, 4 of 10 s done", []Item{{Work: 10, RunningSince: now.Add(-4 * time.Second)}}, 10, 0.6},
		{"two running share the GPU", []Item{{Work: 10, RunningSince: now.Add(-4 * time.Second)}, {Work: 10, RunningSince: now.Add(-4 * time.Second)}}, 10, 1.6},
		{"an overrun image still has 5% left", []Item{{Work: 10, RunningSince: now.Add(-time.Minute)}}, 10, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gpus := []placement.GPU{{UUID: "g"}}
			l.Annotate(gpus, map[string][]Item{"g": tc.items}, now, tc.work)
			if !near(gpus[0].QueuedWork, tc.want) {
				t.Errorf("queued work %v, want %v", gpus[0].QueuedWork, tc.want)
			}
			if !near(gpus[0].ImagesPerSecond, 1/tc.work) {
				t.Errorf("images per second %v, want %v", gpus[0].ImagesPerSecond, 1/tc.work)
			}
		})
	}
	gpus := []placement.GPU{{UUID: "g", ImagesPerSecond: 7}}
	l.Annotate(gpus, nil, now, 0)
	if gpus[0].ImagesPerSecond != 7 {
		t.Errorf("a request without work changed the GPU: %+v", gpus[0])
	}
}

// The engine, fed by Annotate, sends an image where it finishes first: an idle slow GPU loses
// to a fast GPU with one image nearly done.
func TestAnnotatedEnginePicksEarliestFinish(t *testing.T) {
	l := NewLearner(0)
	l.Observe(Finish{UUID: "fast", Duration: 2 * time.Second, Work: 1})
	l.Observe(Finish{UUID: "slow", Duration: 8 * time.Second, Work: 1})
	now := t0.Add(time.Hour)
	gpus := []placement.GPU{
		{Node: "n", Index: 0, UUID: "fast", MemoryTotalBytes: 100, Healthy: true, Heartbeat: now, Slots: 2, SlotsInUse: 1},
		{Node: "n", Index: 1, UUID: "slow", MemoryTotalBytes: 100, Healthy: true, Heartbeat: now, Slots: 2},
	}
	l.Annotate(gpus, map[string][]Item{"fast": {{Work: 1, RunningSince: now.Add(-time.Second)}}}, now, 1)
	d, err := placement.New(placement.Config{}).Place(placement.Snapshot{GPUs: gpus, Now: now}, placement.Request{Images: 1, MemoryPerImage: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d[0].Outcome != placement.OutcomeGPU || d[0].GPU.UUID != "fast" {
		t.Errorf("decision %+v, want the fast GPU (done in 3 s against 8 s)", d[0])
	}
}

func TestMegapixelSteps(t *testing.T) {
	if got := MegapixelSteps(1000, 1000, 20); !near(got, 20) {
		t.Errorf("1000x1000 x 20 steps = %v megapixel-steps, want 20", got)
	}
}

func TestEqualProductsRankEqualDespiteNoise(t *testing.T) {
	l := NewLearner(0)
	for _, g := range []string{"a", "b", "slow"} {
		l.Describe(Figures{UUID: g, Product: "H100"})
	}
	l.Observe(Finish{UUID: "a", Duration: 1000 * time.Millisecond, Work: 1})
	l.Observe(Finish{UUID: "b", Duration: 1300 * time.Millisecond, Work: 1})
	l.Observe(Finish{UUID: "slow", Duration: 4000 * time.Millisecond, Work: 1}) // throttled: 3x the median
	gpus := []placement.GPU{{UUID: "a"}, {UUID: "b"}, {UUID: "slow"}}
	l.Annotate(gpus, nil, t0, 1)
	if gpus[0].ImagesPerSecond != gpus[1].ImagesPerSecond || !near(gpus[0].ImagesPerSecond, 1/1.3) {
		t.Errorf("a and b rank at %v and %v images/s, want both at the product median's 1/1.3", gpus[0].ImagesPerSecond, gpus[1].ImagesPerSecond)
	}
	if !near(gpus[2].ImagesPerSecond, 0.25) {
		t.Errorf("the throttled GPU ranks at %v images/s, want its own 0.25", gpus[2].ImagesPerSecond)
	}
	if sp := l.Speed("b"); !near(sp.SecondsPerMegapixelStep, 1.3) {
		t.Errorf("published figure of b %v, want its own 1.3", sp.SecondsPerMegapixelStep)
	}
}
