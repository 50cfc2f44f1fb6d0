package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// small keeps the scale scenario quick in tests; the others run at their real size.
var small = sizes{scaleGPUs: 40, scaleImages: 400}

func find(t *testing.T, rows []result, scenario, strategy string) result {
	t.Helper()
	for _, r := range rows {
		if r.Scenario == scenario && r.Strategy == strategy {
			return r
		}
	}
	t.Fatalf("no row for %s/%s", scenario, strategy)
	return result{}
}

func TestEveryScenarioAndStrategy(t *testing.T) {
	rows, err := measureAll(scenarioNames, 1, small)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(scenarioNames) * len(strategyNames); len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	for _, r := range rows {
		if r.Images == 0 || r.LowerBound <= 0 || r.Makespan < r.LowerBound*(1-1e-9) || r.P95Latency <= 0 || r.P95Latency > r.Makespan+1e-9 {
			t.Errorf("%s/%s: implausible figures %+v (makespan below the lower bound, or latency beyond it)", r.Scenario, r.Strategy, r)
		}
		if (r.Strategy == "least-loaded" || r.Strategy == ours) && r.FailedImages != 0 {
			t.Errorf("%s/%s lost %d images", r.Scenario, r.Strategy, r.FailedImages)
		}
	}
	// The figures the targets rest on, at the real size of every scenario but scale.
	if g0, prod := find(t, rows, "seed-4gpu", "gpu0"), find(t, rows, "seed-4gpu", ours); g0.Makespan/prod.Makespan < 3.9 {
		t.Errorf("seed-4gpu: gpu0 %.1fs vs ours %.1fs, want at least 3.9x", g0.Makespan, prod.Makespan)
	}
	for _, name := range []string{"heterogeneous", "background-load", "burst"} {
		if r := find(t, rows, name, ours); r.Ratio > 1.10 {
			t.Errorf("%s: ours ratio %.3f, want at most 1.10", name, r.Ratio)
		}
	}
	for _, name := range []string{"heterogeneous", "background-load"} {
		prod := find(t, rows, name, ours)
		for _, other := range []string{"seed-round-robin", "count-spread"} {
			if o := find(t, rows, name, other); prod.Makespan > 0.8*o.Makespan {
				t.Errorf("%s: ours %.1fs, %s %.1fs: want at least 20%% lower", name, prod.Makespan, other, o.Makespan)
			}
		}
	}
	if r := find(t, rows, "gpu-failure", ours); r.Ratio > 1.25 {
		t.Errorf("gpu-failure: ours ratio %.3f, want at most 1.25", r.Ratio)
	}
	// Fair sharing: the small job behind the huge one starts when the first slot frees (an
	// image takes 6 s), instead of after the huge job.
	if prod, old := find(t, rows, "two-tenants", ours), find(t, rows, "two-tenants", "least-loaded"); prod.MaxStartWait > 6 || old.MaxStartWait < 100 {
		t.Errorf("two-tenants: the small job waits %.1fs with fair sharing (want at most 6) and %.1fs without (want the huge job's length)",
			prod.MaxStartWait, old.MaxStartWait)
	}
	for _, name := range []string{"two-tenants", "many-small"} {
		if r := find(t, rows, name, ours); r.Utilization < 0.95 {
			t.Errorf("%s: utilisation %.2f, want the fleet busy (at least 0.95)", name, r.Utilization)
		}
	}
	if r := find(t, rows, "burst", ours); r.spread > 1 {
		t.Errorf("burst: spread %d images between equal GPUs, want at most 1", r.spread)
	}
}

func TestSameSeedSameFigures(t *testing.T) {
	names := []string{"burst", "scale"}
	a, errA := measureAll(names, 7, small)
	b, errB := measureAll(names, 7, small)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with seed 7 differ (errors %v, %v)", errA, errB)
	}
	c, err := measureAll(names, 8, small)
	if err != nil || reflect.DeepEqual(a, c) {
		t.Errorf("seeds 7 and 8 give the same figures (error %v): the seed drives nothing", err)
	}
}

// Without reservations a burst piles onto the GPU that looks idlest until its model memory
// shows up in the published figures; with them it spreads.
func TestBurstSpreadsBecauseOfReservations(t *testing.T) {
	for _, tc := range []struct {
		reservations bool
		maxSpread    int
	}{{true, 1}, {false, 1 << 30}} {
		sc, err := newScenario("burst", 1, small)
		if err != nil {
			t.Fatal(err)
		}
		s := newSim(sc, newEngineStrategy(false, tc.reservations))
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
		got := spread(s)
		if tc.reservations && got > tc.maxSpread {
			t.Errorf("with reservations: spread %d, want at most %d", got, tc.maxSpread)
		}
		if !tc.reservations && got <= 1 {
			t.Errorf("without reservations: spread %d; want the burst to herd (more than 1)", got)
		}
	}
}

func TestJSONRowsHaveExactlyTheDocumentedFields(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--scenario", "seed-2gpu", "--format", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(strategyNames) {
		t.Fatalf("%d lines, want one per strategy (%d):\n%s", len(lines), len(strategyNames), out.String())
	}
	want := []string{"failed_images", "images", "lower_bound_s", "makespan_s", "max_job_start_wait_s", "p95_latency_s", "ratio", "scenario", "strategy", "utilization"}
	for i, line := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		var keys []string
		for k := range row {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("line %d keys %v, want %v", i, keys, want)
		}
		if row["scenario"] != "seed-2gpu" || row["strategy"] != strategyNames[i] {
			t.Errorf("line %d is %v/%v, want seed-2gpu/%s", i, row["scenario"], row["strategy"], strategyNames[i])
		}
	}
}

func TestTableShowsTargets(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--scenario", "seed-4gpu"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"production", "seed-4gpu: production at least 3.9x faster than gpu0: 4.00x", "MET"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "nope"}, `--scenario "nope": want one of`},
		{[]string{"--format", "xml"}, `--format "xml": want table or json`},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		err := run(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
