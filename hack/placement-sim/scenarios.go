package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// Every scenario uses the same image: Stable Diffusion 1.5 at 512x512, about 4 GiB of GPU
// memory, 1.5 s to load the model and 4.5 s to generate on a reference GPU.
const (
	loadWork  = 1.5
	genWork   = 4.5
	footprint = 4 * gib
)

// imageWork is the image's work in megapixel-steps (512x512, 20 steps), as the controller
// computes it from the job's spec.
var imageWork = throughput.MegapixelSteps(512, 512, 20)

// scenarioNames are the scenarios, in the order they are run.
var scenarioNames = []string{"seed-1gpu", "seed-2gpu", "seed-3gpu", "seed-4gpu", "heterogeneous", "background-load", "burst", "gpu-failure", "scale", "two-tenants", "many-small"}

// sizes scales the big scenario, so that tests can run it small.
type sizes struct{ scaleGPUs, scaleImages int }

var fullSize = sizes{scaleGPUs: 1000, scaleImages: 10000}

// newScenario builds the named scenario; seed drives its random parts (arrival times, the mix
// of the big cluster).
func newScenario(name string, seed uint64, sz sizes) (*scenario, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5d_f1ee7))
	sc := &scenario{name: name, loadWork: loadWork, genWork: genWork, footprint: footprint}
	switch name {
	case "seed-1gpu", "seed-2gpu", "seed-3gpu", "seed-4gpu":
		sc.gpus = cluster(int(name[5]-'0'), 24*gib, 1, 2)
		sc.jobs = []jobSpec{{at: 0, images: 4}}
	case "heterogeneous":
		// Four fast GPUs (twice the reference speed, 48 GiB) and four slow ones (24 GiB).
		sc.gpus = cluster(8, 24*gib, 1, 2)
		for i := range 4 {
			sc.gpus[i].speed, sc.gpus[i].memTotal = 2, 48*gib
		}
		sc.jobs = []jobSpec{{at: 0, images: 64}}
	case "background-load":
		// Three of eight GPUs are shared with other tenants that use 60%, 70% and 85% of their
		// memory and as much of their compute.
		sc.gpus = cluster(8, 24*gib, 1, 2)
		for i, share := range map[int]float64{2: 0.60, 4: 0.70, 6: 0.85} {
			sc.gpus[i].bgMem = int64(share * float64(sc.gpus[i].memTotal))
			sc.gpus[i].bgCompute = share
		}
		sc.jobs = []jobSpec{{at: 0, images: 64}}
	case "burst":
		// 40 one-image jobs within one second on eight equal GPUs with room for six images each;
		// the background memory differs by up to 1%, so without reservations the images would
		// pile onto whichever GPU looks idlest until its model memory shows up.
		sc.gpus = cluster(8, 48*gib, 1, 6)
		for i := range sc.gpus {
			sc.gpus[i].bgMem = int64(rng.Float64() * 0.01 * float64(sc.gpus[i].memTotal))
		}
		for range 40 {
			sc.jobs = append(sc.jobs, jobSpec{at: rng.Float64(), images: 1})
		}
	case "gpu-failure":
		// GPU 5 of eight fails 20 s into a 64-image batch and comes back at 40 s.
		sc.gpus = cluster(8, 24*gib, 1, 2)
		sc.gpus[5].outages = []outage{{at: 20, until: 40}}
		sc.jobs = []jobSpec{{at: 0, images: 64}}
	case "scale":
		sc.gpus = bigCluster(rng, sz.scaleGPUs)
		const jobs = 50
		for i := range jobs {
			n := sz.scaleImages / jobs
			if i < sz.scaleImages%jobs {
				n++
			}
			sc.jobs = append(sc.jobs, jobSpec{at: rng.Float64() * 5, images: n})
		}
	case "two-tenants":
		// One tenant's 2000-image job, then another tenant's 4-image job 10 s later, on 16 equal
		// GPUs with two slots each.
		sc.gpus = cluster(16, 24*gib, 1, 2)
		sc.jobs = []jobSpec{{at: 0, images: 2000, namespace: "tenant-a"}, {at: 10, images: 4, namespace: "tenant-b"}}
	case "many-small":
		// 200 four-image jobs of 20 tenants arriving over a minute on the same 16 GPUs.
		sc.gpus = cluster(16, 24*gib, 1, 2)
		for i := range 200 {
			sc.jobs = append(sc.jobs, jobSpec{at: rng.Float64() * 60, images: 4, namespace: fmt.Sprintf("tenant-%d", i%20)})
		}
	default:
		return nil, fmt.Errorf("--scenario %q: want one of %v or all", name, scenarioNames)
	}
	return sc, nil
}

// cluster is n equal GPUs, eight to a node.
func cluster(n int, mem int64, speed float64, slots int) []gpuSpec {
	gpus := make([]gpuSpec, n)
	for i := range gpus {
		gpus[i] = gpuSpec{node: fmt.Sprintf("node-%d", i/8), index: int32(i % 8), memTotal: mem, speed: speed, slots: slots}
	}
	return gpus
}

// bigCluster is a mixed fleet: 40% reference GPUs with 24 GiB, 30% at 1.5x with 48 GiB, 20% at
// 2x with 80 GiB, 10% at 3x with 80 GiB; one GPU in ten shares 30-70% of its memory and compute
// with other tenants.
func bigCluster(rng *rand.Rand, n int) []gpuSpec {
	gpus := cluster(n, 24*gib, 1, 2)
	for i := range gpus {
		g := &gpus[i]
		switch p := rng.Float64(); {
		case p < 0.4:
		case p < 0.7:
			g.speed, g.memTotal = 1.5, 48*gib
		case p < 0.9:
			g.speed, g.memTotal = 2, 80*gib
		default:
			g.speed, g.memTotal = 3, 80*gib
		}
		if rng.Float64() < 0.1 {
			share := 0.3 + 0.4*rng.Float64()
			g.bgMem = int64(share * float64(g.memTotal))
			g.bgCompute = share
		}
	}
	return gpus
}
