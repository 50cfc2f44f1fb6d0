package placement

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

const gib = int64(1) << 30

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// gpu returns a healthy, fresh 24 GiB GPU i on node "n" at the given memory load.
func gpu(i int, load float64) GPU {
	return GPU{
		Node:             "n",
		Index:            int32(i),
		UUID:             fmt.Sprintf("GPU-%02d", i),
		MemoryTotalBytes: 24 * gib,
		MemoryUsedBytes:  int64(load * float64(24*gib)),
		Healthy:          true,
		Heartbeat:        now,
		Slots:            8,
	}
}

func idle(n int) []GPU {
	gpus := make([]GPU, n)
	for i := range gpus {
		gpus[i] = gpu(i, 0)
	}
	return gpus
}

// perGPU counts the images placed on each GPU of gpus, by position.
func perGPU(t *testing.T, gpus []GPU, ds []Decision) []int {
	t.Helper()
	counts := make([]int, len(gpus))
	for _, d := range ds {
		if d.Outcome != OutcomeGPU {
			t.Fatalf("decision %+v: want outcome GPU", d)
		}
		found := false
		for i := range gpus {
			if gpus[i].UUID == d.GPU.UUID {
				counts[i]++
				found = true
			}
		}
		if !found {
			t.Fatalf("decision chose %q, which is not in the snapshot", d.GPU.UUID)
		}
	}
	return counts
}

func TestSeedSystemTable(t *testing.T) {
	for _, policy := range []sdfleetv1alpha1.PlacementPolicy{"", sdfleetv1alpha1.PlacementLeastLoaded, sdfleetv1alpha1.PlacementRoundRobin} {
		for _, tc := range []struct {
			gpus int
			want []int
		}{
			{1, []int{4}},
			{2, []int{2, 2}},
			{3, []int{2, 1, 1}},
			{4, []int{1, 1, 1, 1}},
			{5, []int{1, 1, 1, 1, 0}},
			{8, []int{1, 1, 1, 1, 0, 0, 0, 0}},
		} {
			t.Run(fmt.Sprintf("%s/%d GPUs", policy, tc.gpus), func(t *testing.T) {
				gpus := idle(tc.gpus)
				ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 4, MemoryPerImage: 4 * gib, Policy: policy})
				if err != nil {
					t.Fatal(err)
				}
				if got := perGPU(t, gpus, ds); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("images per GPU = %v, want %v", got, tc.want)
				}
			})
		}
	}
}

func TestSingleImageGoesToLeastLoaded(t *testing.T) {
	gpus := []GPU{gpu(0, 0.5), gpu(1, 0.1), gpu(2, 0.8), gpu(3, 0.3)}
	for _, tc := range []struct {
		policy sdfleetv1alpha1.PlacementPolicy
		want   string
	}{
		{sdfleetv1alpha1.PlacementLeastLoaded, "GPU-01"},
		{sdfleetv1alpha1.PlacementRoundRobin, "GPU-01"},
		{sdfleetv1alpha1.PlacementPack, "GPU-02"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib, Policy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 1 || ds[0].GPU.UUID != tc.want {
				t.Fatalf("decisions %+v, want one on %s", ds, tc.want)
			}
			if ds[0].Policy != tc.policy {
				t.Errorf("decision policy %q, want %q", ds[0].Policy, tc.policy)
			}
		})
	}
}

func TestLoadAndAlternativesAreReported(t *testing.T) {
	gpus := []GPU{gpu(0, 0.5), gpu(1, 0.1), gpu(2, 0.8), gpu(3, 0.3), gpu(4, 0)}
	gpus[4].Healthy = false
	ds, err := New(Config{MaxAlternatives: 4}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.Load < 0.0999 || d.Load > 0.1001 {
		t.Errorf("chosen load %v, want 0.1", d.Load)
	}
	want := []string{"GPU-03", "GPU-00", "GPU-02", "GPU-04"}
	var got []string
	for _, c := range d.Alternatives {
		got = append(got, c.UUID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alternatives %v, want %v (by load, the unhealthy GPU last)", got, want)
	}
	if last := d.Alternatives[len(d.Alternatives)-1]; last.Load != 1 {
		t.Errorf("unhealthy alternative load %v, want 1", last.Load)
	}
}

func TestAlternativesSayWhyTheyLost(t *testing.T) {
	// GPU 0 is free, GPU 1 is where the image failed, GPU 2 has no slot left, GPU 3 is silent.
	gpus := []GPU{gpu(0, 0), gpu(1, 0.1), gpu(2, 0.2), gpu(3, 0)}
	gpus[2].Slots, gpus[2].SlotsInUse = 1, 1
	gpus[3].Heartbeat = now.Add(-time.Hour)
	ds, err := New(Config{MaxAlternatives: 3}).Place(Snapshot{GPUs: gpus, Now: now},
		Request{Images: 1, MemoryPerImage: gib, Avoid: []string{"GPU-01"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{
		{UUID: "GPU-01", Load: 0.1, Fits: true, Avoided: true},
		{UUID: "GPU-02", Load: 0.2},
		{UUID: "GPU-03", Load: 1, Unusable: "silent"},
	}
	got := ds[0].Alternatives
	for i := range got {
		got[i].Load = float64(int(got[i].Load*100+0.5)) / 100
	}
	if ds[0].GPU.UUID != "GPU-00" || !reflect.DeepEqual(got, want) {
		t.Errorf("chose %s with alternatives %+v, want GPU-00 with %+v", ds[0].GPU.UUID, got, want)
	}

	// With measured speeds, each alternative carries its expected finish.
	for i := range gpus {
		gpus[i].ImagesPerSecond = 0.5
	}
	gpus[0].ImagesPerSecond = 0.25
	ds, err = New(Config{MaxAlternatives: 1}).Place(Snapshot{GPUs: gpus[:2], Now: now}, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-01" || ds[0].ExpectedFinish != 2*time.Second {
		t.Fatalf("chose %s finishing in %v, want GPU-01 in 2s", ds[0].GPU.UUID, ds[0].ExpectedFinish)
	}
	if alt := ds[0].Alternatives[0]; alt.UUID != "GPU-00" || alt.ExpectedFinish != 4*time.Second || !alt.Fits {
		t.Errorf("alternative %+v, want GPU-00 fitting and finishing in 4s", alt)
	}
}

func TestUnusableGPUsAreNeverChosen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*GPU)
	}{
		{"query failed", func(g *GPU) { g.Healthy = false }},
		{"silent for over 3 intervals", func(g *GPU) { g.Heartbeat = now.Add(-3*time.Second - time.Millisecond) }},
		{"never reported", func(g *GPU) { g.Heartbeat = time.Time{} }},
		{"silent past its own heartbeat window", func(g *GPU) {
			g.StaleAfter = 30 * time.Second
			g.Heartbeat = now.Add(-31 * time.Second)
		}},
		{"no memory total", func(g *GPU) { g.MemoryTotalBytes = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gpus := []GPU{gpu(0, 0), gpu(1, 0.4), gpu(2, 0.6)}
			tc.spoil(&gpus[0])
			ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 6, MemoryPerImage: gib})
			if err != nil {
				t.Fatal(err)
			}
			if got := perGPU(t, gpus, ds); got[0] != 0 || got[1]+got[2] != 6 {
				t.Errorf("images per GPU = %v, want none on the spoilt GPU 0", got)
			}
		})
	}
}

func TestHeartbeatExactlyThreeIntervalsOldIsStillFresh(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0.5)}
	gpus[0].Heartbeat = now.Add(-6 * time.Second)
	ds, err := New(Config{SampleInterval: 2 * time.Second}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-00" {
		t.Errorf("chose %s, want GPU-00 (heartbeat 3 intervals old is not stale)", ds[0].GPU.UUID)
	}
}

// A GPU whose agent writes only on change and every 10 s is fresh for 30 s, not 3 samples.
func TestStaleAfterOverridesTheSampleInterval(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0.5)}
	gpus[0].Heartbeat = now.Add(-20 * time.Second)
	gpus[0].StaleAfter = 30 * time.Second
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-00" {
		t.Errorf("chose %s, want GPU-00 (its heartbeat is within its own 30 s window)", ds[0].GPU.UUID)
	}
}

func TestNoUsableGPU(t *testing.T) {
	broken := idle(2)
	broken[0].Healthy = false
	broken[1].Heartbeat = now.Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		gpus     []GPU
		fallback bool
		want     Outcome
		reason   string
	}{
		{"no GPU, fallback", nil, true, OutcomeCPU, "no GPU"},
		{"no GPU, no fallback", nil, false, OutcomeWait, "no GPU"},
		// GPUs that are all broken or silent for a moment mean wait: the CPU is for clusters
		// without GPUs, not for a fleet whose agents are restarting.
		{"all broken, fallback", broken, true, OutcomeWait, "1 are unhealthy, 1 have not reported"},
		{"all broken, no fallback", broken, false, OutcomeWait, "1 are unhealthy, 1 have not reported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := New(Config{}).Place(Snapshot{GPUs: tc.gpus, Now: now}, Request{Images: 3, MemoryPerImage: gib, AllowCPUFallback: tc.fallback})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 3 {
				t.Fatalf("%d decisions, want 3", len(ds))
			}
			for _, d := range ds {
				if d.Outcome != tc.want || !strings.Contains(d.Reason, tc.reason) {
					t.Errorf("decision %+v, want %s with a reason containing %q", d, tc.want, tc.reason)
				}
			}
		})
	}
}

func TestWaitWhenNoGPUHasRoom(t *testing.T) {
	gpus := idle(2)
	gpus[0].Slots, gpus[0].SlotsInUse = 2, 2
	gpus[1].MemoryUsedBytes = 20 * gib
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 2, MemoryPerImage: 4 * gib, AllowCPUFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Outcome != OutcomeWait || !strings.Contains(d.Reason, "1 have every slot taken and 1 lack the memory") {
			t.Errorf("decision %+v, want a Wait (not CPU: GPUs exist) saying one GPU is full and one lacks memory", d)
		}
	}
}

func TestBatchPlacesWhatFitsThenWaits(t *testing.T) {
	gpus := idle(1)
	gpus[0].Slots = 2
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 4, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []Outcome
	for _, d := range ds {
		outcomes = append(outcomes, d.Outcome)
	}
	if want := []Outcome{OutcomeGPU, OutcomeGPU, OutcomeWait, OutcomeWait}; !reflect.DeepEqual(outcomes, want) {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
}

func TestMemoryFitKeepsHeadroom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		headroom float64
		used     int64
		reserved int64
		image    int64
		fits     bool
	}{
		{"default 5%: 95 of 100 fits", 0, 0, 0, 95, true},
		{"default 5%: 96 of 100 does not", 0, 0, 0, 96, false},
		{"used counts", 0, 50, 0, 46, false},
		{"reservations count", 0, 10, 40, 45, true},
		{"reservations count, over", 0, 10, 40, 46, false},
		{"headroom 20%", 0.2, 0, 0, 81, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gpu(0, 0)
			g.MemoryTotalBytes, g.MemoryUsedBytes = 100, tc.used
			var res []Reservation
			if tc.reserved > 0 {
				res = []Reservation{{GPU: g.UUID, Bytes: tc.reserved}}
			}
			ds, err := New(Config{Headroom: tc.headroom}).Place(Snapshot{GPUs: []GPU{g}, Reservations: res, Now: now}, Request{Images: 1, MemoryPerImage: tc.image})
			if err != nil {
				t.Fatal(err)
			}
			if got := ds[0].Outcome == OutcomeGPU; got != tc.fits {
				t.Errorf("decision %+v: placed = %v, want %v", ds[0], got, tc.fits)
			}
		})
	}
}

func TestReservationsRaiseEffectiveLoad(t *testing.T) {
	// GPU 0 looks idle live, but three images are on their way to it.
	gpus := []GPU{gpu(0, 0.10), gpu(1, 0.30)}
	res := []Reservation{{GPU: "GPU-00", Bytes: 4 * gib}, {GPU: "GPU-00", Bytes: 4 * gib}, {GPU: "GONE", Bytes: 4 * gib}}
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Reservations: res, Now: now}, Request{Images: 1, MemoryPerImage: 4 * gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-01" {
		t.Fatalf("chose %s, want GPU-01 (GPU-00 is at 10%% live + 8 GiB reserved)", ds[0].GPU.UUID)
	}
	wantLoad := (0.10*24 + 8) / 24
	if alt := ds[0].Alternatives[0]; alt.UUID != "GPU-00" || alt.Load < wantLoad-1e-9 || alt.Load > wantLoad+1e-9 {
		t.Errorf("alternative %+v, want GPU-00 at effective load %v", alt, wantLoad)
	}
}

func TestBurstOfSingleImagesSpreadsThroughReservations(t *testing.T) {
	// The controller records a reservation for every image it places; the live figures do not
	// move during the burst.
	// GPU 3 looks idlest; without reservations every image would go there.
	gpus := make([]GPU, 8)
	for i := range gpus {
		gpus[i] = gpu(i, 0.10)
	}
	gpus[3].MemoryUsedBytes = gib / 2
	e := New(Config{})
	var res []Reservation
	counts := map[string]int{}
	for range 40 {
		ds, err := e.Place(Snapshot{GPUs: gpus, Reservations: res, Now: now}, Request{Images: 1, MemoryPerImage: 2 * gib})
		if err != nil {
			t.Fatal(err)
		}
		d := ds[0]
		if d.Outcome != OutcomeGPU {
			t.Fatalf("decision %+v, want GPU", d)
		}
		counts[d.GPU.UUID]++
		res = append(res, Reservation{GPU: d.GPU.UUID, Bytes: 2 * gib})
		for i := range gpus {
			if gpus[i].UUID == d.GPU.UUID {
				gpus[i].SlotsInUse++
			}
		}
	}
	lo, hi := 40, 0
	for i := range gpus {
		lo, hi = min(lo, counts[gpus[i].UUID]), max(hi, counts[gpus[i].UUID])
	}
	if hi-lo > 1 {
		t.Errorf("images per GPU %v: spread %d, want at most 1", counts, hi-lo)
	}
}

func TestTieCursorPersistsAcrossCalls(t *testing.T) {
	// Without reservations (the snapshot never changes) only the cursor can spread the images.
	gpus := idle(4)
	for _, policy := range []sdfleetv1alpha1.PlacementPolicy{sdfleetv1alpha1.PlacementLeastLoaded, sdfleetv1alpha1.PlacementRoundRobin, sdfleetv1alpha1.PlacementPack} {
		t.Run(string(policy), func(t *testing.T) {
			e := New(Config{})
			var got []string
			for range 6 {
				ds, err := e.Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib, Policy: policy})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ds[0].GPU.UUID)
			}
			want := []string{"GPU-00", "GPU-01", "GPU-02", "GPU-03", "GPU-00", "GPU-01"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("choices %v, want %v", got, want)
			}
		})
	}
}

func TestCursorFollowsNodeIndexOrderNotSnapshotOrder(t *testing.T) {
	a, b, c := gpu(0, 0), gpu(1, 0), gpu(0, 0)
	c.Node, c.UUID = "m", "GPU-m0"
	e := New(Config{})
	var got []string
	for _, order := range [][]GPU{{c, b, a}, {b, a, c}, {a, c, b}, {c, a, b}} {
		ds, err := e.Place(Snapshot{GPUs: order, Now: now}, Request{Images: 1, MemoryPerImage: gib})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds[0].GPU.UUID)
	}
	if want := []string{"GPU-m0", "GPU-00", "GPU-01", "GPU-m0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("choices %v, want %v", got, want)
	}
}

func TestSlotsFullIsNotChosen(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0.7)}
	gpus[0].Slots, gpus[0].SlotsInUse = 2, 1
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 3, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if got := perGPU(t, gpus, ds); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("images per GPU = %v, want [1 2]: GPU 0 had one free slot", got)
	}
}

func TestZeroSlotsMeansNoSlotLimit(t *testing.T) {
	gpus := idle(1)
	gpus[0].Slots, gpus[0].SlotsInUse = 0, 50
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Outcome != OutcomeGPU {
		t.Errorf("decision %+v, want GPU", ds[0])
	}
}

func TestPackFillsTheMostLoadedGPUThatFits(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0.5), gpu(2, 0.9)}
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 4, MemoryPerImage: 4 * gib, Policy: sdfleetv1alpha1.PlacementPack})
	if err != nil {
		t.Fatal(err)
	}
	// GPU 2 (90%) has no room for 4 GiB; GPU 1 takes two (12+8 of 22.8 GiB), then GPU 0.
	if got := perGPU(t, gpus, ds); !reflect.DeepEqual(got, []int{2, 2, 0}) {
		t.Errorf("images per GPU = %v, want [2 2 0]", got)
	}
	if ds[0].GPU.UUID != "GPU-01" || ds[2].GPU.UUID != "GPU-00" {
		t.Errorf("order %s,%s,%s,%s: want GPU-01 filled first", ds[0].GPU.UUID, ds[1].GPU.UUID, ds[2].GPU.UUID, ds[3].GPU.UUID)
	}
}

func TestPinned(t *testing.T) {
	idx := func(i int32) *int32 { return &i }
	gpus := []GPU{gpu(0, 0), gpu(1, 0.5), gpu(2, 0.3), gpu(3, 0.6)}
	for _, tc := range []struct {
		name    string
		pinned  []GPURef
		want    []int
		wantErr string
	}{
		{"by UUID", []GPURef{{Node: "n", UUID: "GPU-01"}, {UUID: "GPU-03"}}, []int{0, 2, 0, 1}, ""},
		{"by index", []GPURef{{Node: "n", Index: idx(2)}}, []int{0, 0, 3, 0}, ""},
		{"unknown UUID", []GPURef{{Node: "n", UUID: "GPU-01"}, {Node: "n", UUID: "GPU-99"}}, nil, `request.Pinned[1]: no GPU "GPU-99" on node "n"`},
		{"UUID on the wrong node", []GPURef{{Node: "other", UUID: "GPU-01"}}, nil, `"GPU-01" on node "other"`},
		{"unknown index", []GPURef{{Node: "n", Index: idx(7)}}, nil, `request.Pinned[0]: no GPU with index 7 on node "n"`},
		{"empty", nil, nil, "request.Pinned is empty"},
		{"neither UUID nor index", []GPURef{{Node: "n"}}, nil, "request.Pinned[0]: set UUID or Index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 3, MemoryPerImage: 4 * gib, Policy: sdfleetv1alpha1.PlacementPinned, Pinned: tc.pinned})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := perGPU(t, gpus, ds); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("images per GPU = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPinnedGPUsAllUnusableWait(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0)}
	gpus[1].Healthy = false
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib, Policy: sdfleetv1alpha1.PlacementPinned, Pinned: []GPURef{{UUID: "GPU-01"}}, AllowCPUFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Outcome != OutcomeWait || !strings.Contains(ds[0].Reason, "n/1 (GPU-01)") {
		t.Errorf("decision %+v, want Wait naming n/1 (GPU-01)", ds[0])
	}
}

func TestHotGPUGetsPenalty(t *testing.T) {
	gpus := []GPU{gpu(0, 0.10), gpu(1, 0.20)}
	gpus[0].TemperatureCelsius = 90
	gpus[1].TemperatureCelsius = 70
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"default threshold 85, penalty 0.15", Config{}, "GPU-01"},
		{"threshold 95", Config{HotTemperatureCelsius: 95}, "GPU-00"},
		{"small penalty", Config{TemperaturePenalty: 0.05}, "GPU-00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := New(tc.cfg).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
			if err != nil {
				t.Fatal(err)
			}
			if ds[0].GPU.UUID != tc.want {
				t.Errorf("chose %s, want %s", ds[0].GPU.UUID, tc.want)
			}
		})
	}
}

func TestAvoidIsHonouredWhileAnotherGPUFits(t *testing.T) {
	for _, policy := range []sdfleetv1alpha1.PlacementPolicy{sdfleetv1alpha1.PlacementLeastLoaded, sdfleetv1alpha1.PlacementRoundRobin, sdfleetv1alpha1.PlacementPack} {
		t.Run(string(policy), func(t *testing.T) {
			gpus := []GPU{gpu(0, 0), gpu(1, 0.5)}
			gpus[1].Slots = 2
			ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 3, MemoryPerImage: gib, Policy: policy, Avoid: []string{"GPU-00", "GPU-77"}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.GPU.UUID)
			}
			if want := []string{"GPU-01", "GPU-01", "GPU-00"}; !reflect.DeepEqual(got, want) {
				t.Errorf("choices %v, want %v: the avoided GPU only once the other is full", got, want)
			}
		})
	}
}

func TestSpeedAwareLeastLoaded(t *testing.T) {
	fast, slow := gpu(0, 0), gpu(1, 0)
	fast.ImagesPerSecond, slow.ImagesPerSecond = 2, 1
	ds, err := New(Config{}).Place(Snapshot{GPUs: []GPU{fast, slow}, Now: now}, Request{Images: 6, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if got := perGPU(t, []GPU{fast, slow}, ds); !reflect.DeepEqual(got, []int{4, 2}) {
		t.Errorf("images per GPU = %v, want [4 2] (in proportion to speed)", got)
	}
	if ds[0].ExpectedFinish != 500*time.Millisecond {
		t.Errorf("first decision expected finish %v, want 500ms", ds[0].ExpectedFinish)
	}
	// Without speeds the same GPUs are purely load-based.
	ds, err = New(Config{}).Place(Snapshot{GPUs: idle(2), Now: now}, Request{Images: 6, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if got := perGPU(t, idle(2), ds); !reflect.DeepEqual(got, []int{3, 3}) || ds[0].ExpectedFinish != 0 {
		t.Errorf("images per GPU = %v, expected finish %v; want [3 3] and 0", got, ds[0].ExpectedFinish)
	}
}

func TestUnknownSpeedTakesTheSlowestKnown(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0), gpu(2, 0)}
	gpus[0].ImagesPerSecond, gpus[2].ImagesPerSecond = 2, 3 // GPU 1 is taken at 2
	gpus[0].SlotsInUse, gpus[1].SlotsInUse, gpus[2].SlotsInUse = 1, 1, 3
	// Expected finishes: GPU 0 2/2 = 1s, GPU 1 2/2 = 1s, GPU 2 4/3 s. GPU 0 and 1 tie; the
	// cursor picks GPU 0, then GPU 1 (GPU 0 now at 1.5s), then GPU 2 (both others at 1.5s).
	// Were GPU 1 taken at the mean, 2.5, it would come first at 0.8s.
	ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 3, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-00" || ds[1].GPU.UUID != "GPU-01" || ds[2].GPU.UUID != "GPU-02" {
		t.Errorf("choices %s, %s, %s; want GPU-00, GPU-01, GPU-02", ds[0].GPU.UUID, ds[1].GPU.UUID, ds[2].GPU.UUID)
	}
}

func TestQueuedWorkRefinesExpectedFinish(t *testing.T) {
	gpus := []GPU{gpu(0, 0), gpu(1, 0)}
	for i := range gpus {
		gpus[i].ImagesPerSecond = 1
	}
	gpus[0].SlotsInUse, gpus[1].SlotsInUse = 2, 1
	for _, tc := range []struct {
		name   string
		queued float64
		want   string
	}{
		{"unknown: GPU 0 has two whole images ahead (3s), GPU 1 one (2s)", 0, "GPU-01"},
		{"GPU 0's two images are nearly done (1.2s)", 0.2, "GPU-00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gpus[0].QueuedWork = tc.queued
			ds, err := New(Config{}).Place(Snapshot{GPUs: gpus, Now: now}, Request{Images: 1, MemoryPerImage: gib})
			if err != nil {
				t.Fatal(err)
			}
			if ds[0].GPU.UUID != tc.want {
				t.Errorf("chose %s, want %s", ds[0].GPU.UUID, tc.want)
			}
		})
	}
}

func TestWaitForAFasterBusyGPU(t *testing.T) {
	fast, slow := gpu(0, 0), gpu(1, 0)
	fast.ImagesPerSecond, fast.Slots, fast.SlotsInUse = 10, 1, 1
	slow.ImagesPerSecond = 1
	snap := Snapshot{GPUs: []GPU{fast, slow}, Now: now}
	ds, err := New(Config{}).Place(snap, Request{Images: 2, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Outcome != OutcomeWait || (d.AwaitsGPU != "GPU-00" || !strings.Contains(d.Reason, "the first by n/0 (GPU-00)")) {
			t.Errorf("decision %+v, want a Wait for the fast GPU", d)
		}
	}
	ds, err = New(Config{NoWaitForFasterGPU: true}).Place(snap, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-01" {
		t.Errorf("with NoWaitForFasterGPU chose %+v, want GPU-01", ds[0])
	}
	// A fast GPU at 4 images/s with one image on it gets through 3 more images' work before the
	// slow free GPU's 1s: up to three images are worth waiting for it; with more to place the
	// slow GPU starts one now (then it is at 2s, and the fast GPU can take all the rest by then).
	four := Snapshot{GPUs: []GPU{fast, slow}, Now: now}
	four.GPUs[0].ImagesPerSecond = 4
	for _, tc := range []struct {
		images, backlog int
		want            []string
	}{
		{3, 0, []string{"Wait:", "Wait:", "Wait:"}},
		{4, 0, []string{"GPU:GPU-01", "Wait:", "Wait:", "Wait:"}},
		{1, 0, []string{"Wait:"}},
		{1, 2, []string{"Wait:"}},
		{1, 3, []string{"GPU:GPU-01"}},
	} {
		ds, err = New(Config{}).Place(four, Request{Images: tc.images, Backlog: tc.backlog, MemoryPerImage: gib})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, string(d.Outcome)+":"+d.GPU.UUID)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d images, backlog %d: decisions %v, want %v", tc.images, tc.backlog, got, tc.want)
		}
	}
	// When the slow GPU is the quicker way (the fast one has a long queue), use it.
	snap.GPUs[0].ImagesPerSecond = 1.5
	ds, err = New(Config{}).Place(snap, Request{Images: 1, MemoryPerImage: gib})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GPU.UUID != "GPU-01" {
		t.Errorf("chose %+v, want GPU-01: 1/1s beats (1+1)/1.5s", ds[0])
	}
}

func TestAvoidedFreeGPUVersusFasterBusyOne(t *testing.T) {
	avoided, fast := gpu(0, 0), gpu(1, 0)
	avoided.ImagesPerSecond = 1
	fast.ImagesPerSecond, fast.Slots, fast.SlotsInUse = 10, 1, 1
	ds, err := New(Config{}).Place(Snapshot{GPUs: []GPU{avoided, fast}, Now: now}, Request{Images: 1, MemoryPerImage: gib, Avoid: []string{"GPU-00"}})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.Outcome != OutcomeWait || d.AwaitsGPU != "GPU-01" || strings.Contains(d.Reason, "Inf") || !strings.Contains(d.Reason, "n/0 (GPU-00) at 1.0s") {
		t.Errorf("decision %+v, want a Wait for GPU-01 that names the avoided GPU's 1.0s", d)
	}
}

func TestBadRequestsAreErrorsNamingTheField(t *testing.T) {
	ok := Snapshot{GPUs: idle(2), Now: now}
	dupe := idle(2)
	dupe[1].UUID = dupe[0].UUID
	noUUID := idle(2)
	noUUID[1].UUID = ""
	for _, tc := range []struct {
		name string
		snap Snapshot
		req  Request
		want string
	}{
		{"negative images", ok, Request{Images: -1}, "request.Images is -1"},
		{"negative memory", ok, Request{Images: 1, MemoryPerImage: -3}, "request.MemoryPerImage is -3"},
		{"negative backlog", ok, Request{Images: 1, Backlog: -2}, "request.Backlog is -2"},
		{"unknown policy", ok, Request{Images: 1, Policy: "Fastest"}, `request.Policy is "Fastest"`},
		{"duplicate UUID", Snapshot{GPUs: dupe, Now: now}, Request{Images: 1}, `snapshot.GPUs[1]: UUID "GPU-00" repeats snapshot.GPUs[0]`},
		{"empty UUID", Snapshot{GPUs: noUUID, Now: now}, Request{Images: 1}, "snapshot.GPUs[1] (node \"n\", index 1): UUID is empty"},
		{"no time", Snapshot{GPUs: idle(1)}, Request{Images: 1}, "snapshot.Now is zero"},
		{"negative reservation", Snapshot{GPUs: idle(1), Now: now, Reservations: []Reservation{{GPU: "GPU-00", Bytes: -1}}}, Request{Images: 1}, "snapshot.Reservations[0] (GPU \"GPU-00\"): Bytes is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{})
			ds, err := e.Place(tc.snap, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if len(ds) != 0 {
				t.Errorf("%d decisions with an error, want none", len(ds))
			}
			// The engine stays usable after a bad call.
			if ds, err := e.Place(ok, Request{Images: 1, MemoryPerImage: gib}); err != nil || ds[0].Outcome != OutcomeGPU {
				t.Errorf("after the bad call: %+v, %v; want a GPU decision", ds, err)
			}
		})
	}
}

func TestZeroImagesIsNoDecision(t *testing.T) {
	ds, err := New(Config{}).Place(Snapshot{GPUs: idle(2), Now: now}, Request{})
	if err != nil || len(ds) != 0 {
		t.Errorf("Place of 0 images = %v, %v; want no decision and no error", ds, err)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	got := New(Config{Headroom: 2, SampleInterval: -time.Second, MaxAlternatives: -1}).Config()
	want := Config{Headroom: DefaultHeadroom, SampleInterval: DefaultSampleInterval, HotTemperatureCelsius: DefaultHotTemperatureCelsius, TemperaturePenalty: DefaultTemperaturePenalty}
	if got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Headroom: 1}, "Headroom is 1"},
		{Config{SampleInterval: -1}, "SampleInterval is -1ns"},
		{Config{TemperaturePenalty: -0.5}, "TemperaturePenalty is -0.5"},
		{Config{}, ""},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	snap, req := benchSnapshot(200, 100), Request{Images: 50, MemoryPerImage: 3 * gib}
	a, errA := New(Config{}).Place(snap, req)
	b, errB := New(Config{}).Place(snap, req)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("two fresh engines disagree: %v %v", errA, errB)
	}
}

func TestPlaceIntoSteadyStateDoesNotAllocate(t *testing.T) {
	for _, speeds := range []bool{false, true} {
		snap := benchSnapshot(1000, 500)
		if speeds {
			for i := range snap.GPUs {
				snap.GPUs[i].ImagesPerSecond = 0.5 + float64(i%4)
			}
		}
		e := New(Config{})
		req := Request{Images: 4, MemoryPerImage: 3 * gib, Avoid: []string{"GPU-0001"}}
		dst, err := e.PlaceInto(nil, snap, req)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			dst, err = e.PlaceInto(dst, snap, req)
		})
		if err != nil || allocs != 0 || dst[3].Outcome != OutcomeGPU {
			t.Errorf("speeds %v: %v allocations per call (want 0), err %v, last %+v", speeds, allocs, err, dst[3])
		}
	}
}
