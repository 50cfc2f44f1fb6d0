package controllers

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/fairshare"
)

// jobDemands records, for every job that holds or wants GPU slots, how many it would hold if
// each of its images that needs a GPU had one. Safe for concurrent use.
type jobDemands struct {
	mu   sync.Mutex
	jobs map[types.NamespacedName]demand
	seq  uint64
}

// demand is a job's slots and when it first asked (a counter: jobs are served oldest first
// when slots are fewer than jobs).
type demand struct {
	slots int
	since uint64
}

func newJobDemands() *jobDemands { return &jobDemands{jobs: map[types.NamespacedName]demand{}} }

// set records a job's demand; 0 or less forgets the job.
func (d *jobDemands) set(job types.NamespacedName, slots int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slots <= 0 {
		delete(d.jobs, job)
		return
	}
	cur, ok := d.jobs[job]
	if !ok {
		d.seq++
		cur.since = d.seq
	}
	cur.slots = slots
	d.jobs[job] = cur
}

// share is job's fair share of capacity slots against every recorded demand.
func (d *jobDemands) share(job types.NamespacedName, capacity int) int {
	type entry struct {
		key types.NamespacedName
		demand
	}
	d.mu.Lock()
	entries := make([]entry, 0, len(d.jobs))
	for k, v := range d.jobs {
		entries = append(entries, entry{k, v})
	}
	d.mu.Unlock()
	sort.Slice(entries, func(a, b int) bool { return entries[a].since < entries[b].since })
	demands := make([]fairshare.Demand, len(entries))
	for i, e := range entries {
		demands[i] = fairshare.Demand{Namespace: e.key.Namespace, Job: e.key.Name, Slots: e.slots}
	}
	for _, s := range fairshare.Shares(capacity, demands) {
		if s.Namespace == job.Namespace && s.Job == job.Name {
			return s.Slots
		}
	}
	return 0
}

// fairShareRecheck is how soon a job held back by its fair share is reconciled again.
const fairShareRecheck = time.Second

// slotCapacity is the number of image slots of the healthy GPUs that are not silent, and false
// when the fleet's slots do not bound it (a GPU without a slot limit, or no GPU at all: then
// placement alone decides).
func (r *ImageGenerationJobReconciler) slotCapacity(nodes map[string]*sdfleetv1alpha1.GPUNode) (int, bool) {
	now := r.now()
	capacity := 0
	for _, gn := range nodes {
		if r.heartbeats.seen(gn).Before(now.Add(-r.staleAfter(gn))) {
			continue
		}
		for _, g := range gn.Status.GPUs {
			if g.Health != sdfleetv1alpha1.GPUHealthy {
				continue
			}
			if g.Slots <= 0 {
				return 0, false
			}
			capacity += int(g.Slots)
		}
	}
	return capacity, capacity > 0
}

// fairLimit cuts indexes to what the job's fair share of the GPU slots allows it to add now;
// the images cut wait, with a reason, and the job stays among those that pod and GPU changes
// wake. Called with placeMu held.
func (r *ImageGenerationJobReconciler) fairLimit(s *syncState, nodes map[string]*sdfleetv1alpha1.GPUNode, indexes []int32) []int32 {
	capacity, bounded := r.slotCapacity(nodes)
	if !bounded {
		return indexes
	}
	share := r.demands.share(s.key, capacity)
	allowed := max(share-int(s.st.active), 0)
	if allowed >= len(indexes) {
		return indexes
	}
	reason := fmt.Sprintf("waiting for its fair share of the GPUs: %d of %d image slots are its share while other jobs want them too, "+
		"and it holds %d", share, capacity, s.st.active)
	for _, i := range indexes[allowed:] {
		s.st.image(i).waiting = reason
	}
	// Another job's demand falling (it finished, or its images found room) gives this job a
	// larger share without any event of its own: look again soon.
	s.requeue(fairShareRecheck)
	return indexes[:allowed]
}
