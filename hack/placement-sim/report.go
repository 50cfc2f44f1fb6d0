package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"text/tabwriter"
)

// result is one row: a strategy on a scenario. The JSON fields are the machine-readable output.
type result struct {
	Scenario     string  `json:"scenario"`
	Strategy     string  `json:"strategy"`
	Images       int     `json:"images"`
	Makespan     float64 `json:"makespan_s"`
	LowerBound   float64 `json:"lower_bound_s"`
	Ratio        float64 `json:"ratio"`
	P95Latency   float64 `json:"p95_latency_s"`
	FailedImages int     `json:"failed_images"`
	// MaxStartWait is the longest any job waited from its arrival to its first image's start;
	// Utilization the GPUs' busy time over GPUs x makespan.
	MaxStartWait float64 `json:"max_job_start_wait_s"`
	Utilization  float64 `json:"utilization"`

	// spread is, over the groups of GPUs of equal speed, the largest difference between the
	// images two GPUs of a group started (table only).
	spread int
}

// measure runs strategy name on a fresh copy of the scenario.
func measure(name string, seed uint64, sz sizes, strategyName string) (result, error) {
	sc, err := newScenario(name, seed, sz)
	if err != nil {
		return result{}, err
	}
	s := newSim(sc, newStrategy(strategyName))
	if err := s.run(); err != nil {
		return result{}, fmt.Errorf("scenario %s, strategy %s: %w", name, strategyName, err)
	}
	r := result{Scenario: name, Strategy: strategyName, Images: sc.images(), LowerBound: sc.lowerBound()}
	var latencies []float64
	for _, j := range s.jobs {
		for _, img := range j.images {
			if img.state != imageDone {
				r.FailedImages++
				continue
			}
			r.Makespan = max(r.Makespan, img.doneAt)
			latencies = append(latencies, img.doneAt-j.arrival)
		}
	}
	for _, j := range s.jobs {
		if j.firstStart >= 0 {
			r.MaxStartWait = max(r.MaxStartWait, j.firstStart-j.arrival)
		}
	}
	busy := 0.0
	for _, g := range s.gpus {
		g.tick(s.now)
		busy += g.busy
	}
	if r.Makespan > 0 {
		r.Utilization = busy / (float64(len(s.gpus)) * r.Makespan)
	}
	r.Ratio = r.Makespan / r.LowerBound
	r.P95Latency = percentile(latencies, 0.95)
	r.spread = spread(s)
	return r, nil
}

// percentile is the nearest-rank percentile of xs (0 when empty).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	rank := int(math.Ceil(p*float64(len(xs)))) - 1
	return xs[max(rank, 0)]
}

func spread(s *sim) int {
	groups := map[float64][]int{}
	for _, g := range s.gpus {
		groups[g.eff] = append(groups[g.eff], g.started)
	}
	worst := 0
	for _, counts := range groups {
		worst = max(worst, slices.Max(counts)-slices.Min(counts))
	}
	return worst
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func writeJSON(w io.Writer, rows []result) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		r.Makespan, r.LowerBound, r.Ratio, r.P95Latency = round3(r.Makespan), round3(r.LowerBound), round3(r.Ratio), round3(r.P95Latency)
		r.MaxStartWait, r.Utilization = round3(r.MaxStartWait), round3(r.Utilization)
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

func writeTable(w io.Writer, rows []result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tstrategy\timages\tmakespan s\tlower bound s\tratio\tvs gpu0\tp95 latency s\tmax job wait s\tutil\tfailed\tspread\t")
	gpu0 := map[string]float64{}
	for _, r := range rows {
		if r.Strategy == "gpu0" {
			gpu0[r.Scenario] = r.Makespan
		}
	}
	for _, r := range rows {
		speedup := "-"
		if base, ok := gpu0[r.Scenario]; ok && r.Makespan > 0 {
			speedup = fmt.Sprintf("%.2fx", base/r.Makespan)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.3f\t%s\t%.1f\t%.1f\t%.2f\t%d\t%d\t\n",
			r.Scenario, r.Strategy, r.Images, r.Makespan, r.LowerBound, r.Ratio, speedup, r.P95Latency, r.MaxStartWait, r.Utilization, r.FailedImages, r.spread)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if checks := targets(rows); len(checks) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		for _, c := range checks {
			verdict := "MET   "
			if !c.met {
				verdict = "MISSED"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", verdict, c.what, c.detail)
		}
	}
	return nil
}

// check is one target and whether the rows meet it.
type check struct {
	what   string
	met    bool
	detail string
}

const ours = "production"

// targets checks the targets that the rows allow checking.
func targets(rows []result) []check {
	find := func(scenario, strategy string) (result, bool) {
		for _, r := range rows {
			if r.Scenario == scenario && r.Strategy == strategy {
				return r, true
			}
		}
		return result{}, false
	}
	var checks []check
	if g0, ok := find("seed-4gpu", "gpu0"); ok {
		for _, name := range []string{"seed-round-robin", ours} {
			if r, ok := find("seed-4gpu", name); ok {
				x := g0.Makespan / r.Makespan
				checks = append(checks, check{"seed-4gpu: " + name + " at least 3.9x faster than gpu0", x >= 3.9, fmt.Sprintf("%.2fx", x)})
			}
		}
	}
	var ratios []float64
	for _, name := range scenarioNames {
		r, ok := find(name, ours)
		if !ok {
			continue
		}
		ratios = append(ratios, r.Ratio)
		if name == "gpu-failure" {
			checks = append(checks, check{"gpu-failure: ours loses no image and ratio <= 1.25", r.FailedImages == 0 && r.Ratio <= 1.25,
				fmt.Sprintf("ratio %.3f, %d lost", r.Ratio, r.FailedImages)})
			continue
		}
		detail := fmt.Sprintf("%.3f", r.Ratio)
		if name == "seed-3gpu" {
			detail += " (4 indivisible images on 3 GPUs: 1.5 is the best any schedule can do against this bound)"
		}
		checks = append(checks, check{name + ": ours ratio <= 1.10", r.Ratio <= 1.10, detail})
	}
	if len(ratios) == len(scenarioNames) {
		sort.Float64s(ratios)
		median := ratios[len(ratios)/2]
		checks = append(checks, check{"median scenario: ours ratio <= 1.05", median <= 1.05, fmt.Sprintf("%.3f", median)})
	}
	for _, name := range []string{"heterogeneous", "background-load"} {
		r, ok := find(name, ours)
		if !ok {
			continue
		}
		for _, other := range []string{"seed-round-robin", "count-spread"} {
			if o, ok := find(name, other); ok {
				gain := 1 - r.Makespan/o.Makespan
				detail := fmt.Sprintf("%.1f%% lower", 100*gain)
				if o.FailedImages > 0 {
					detail += fmt.Sprintf(" (and %s lost %d images)", other, o.FailedImages)
				}
				checks = append(checks, check{name + ": ours makespan at least 20% below " + other, gain >= 0.20, detail})
			}
		}
	}
	if r, ok := find("two-tenants", ours); ok {
		// One image takes 6 s on these GPUs: the small job starts when the first slot frees.
		checks = append(checks, check{"two-tenants: the 4-image job starts within one image time (6 s) of its arrival",
			r.MaxStartWait <= 6, fmt.Sprintf("%.1fs", r.MaxStartWait)})
	}
	if r, ok := find("burst", ours); ok {
		checks = append(checks, check{"burst: no GPU gets more than one image more than an equal GPU", r.spread <= 1, fmt.Sprintf("spread %d", r.spread)})
	}
	return checks
}
