package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/ledger"
	"github.com/sdfleet/sdfleet/controllers/placement"
	"github.com/sdfleet/sdfleet/controllers/placementrecord"
	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// gpuNodes lists the GPUNodes from the cache, by name. The objects are shared with the cache
// and must not be modified.
func (r *ImageGenerationJobReconciler) gpuNodes(ctx context.Context) (map[string]*sdfleetv1alpha1.GPUNode, error) {
	var list sdfleetv1alpha1.GPUNodeList
	if err := r.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list GPUNodes: %w", err)
	}
	out := make(map[string]*sdfleetv1alpha1.GPUNode, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// gpuHealth says whether the GPU uuid on node is known and healthy, and why not.
func gpuHealth(nodes map[string]*sdfleetv1alpha1.GPUNode, node, uuid string) (bool, string) {
	gn := nodes[node]
	if gn == nil {
		return false, fmt.Sprintf("node %s no longer publishes its GPUs (GPUNode %s is gone)", node, node)
	}
	for _, g := range gn.Status.GPUs {
		if g.UUID != uuid {
			continue
		}
		if g.Health != sdfleetv1alpha1.GPUHealthy {
			return false, fmt.Sprintf("GPU %s on %s turned unhealthy (%s)", uuid, node, g.HealthReason)
		}
		return true, ""
	}
	return false, fmt.Sprintf("GPU %s is no longer listed on node %s", uuid, node)
}

// replaceOnUnhealthyGPUs deletes the pods that have not started yet on a GPU that turned
// unhealthy or vanished; their images are placed again without counting an attempt.
func (r *ImageGenerationJobReconciler) replaceOnUnhealthyGPUs(ctx context.Context, s *syncState,
	nodes map[string]*sdfleetv1alpha1.GPUNode) error {
	var errs []error
	replaced := 0
	for _, img := range s.st.byIndex {
		p := img.current
		if p == nil || p.kind != podPending || !p.observed || p.gpuUUID == "" {
			continue
		}
		healthy, why := gpuHealth(nodes, p.node, p.gpuUUID)
		if healthy {
			continue
		}
		if err := r.deletePod(ctx, s.job.Namespace, p.name); err != nil {
			errs = append(errs, err)
			continue
		}
		p.kind = podLost
		p.message = "placed again before it ran: " + why
		img.evaluate(backoffLimit(s.job))
		if replaced < r.cfg.MaxPlacementEvents {
			s.event(corev1.EventTypeWarning, "Replacing", "Place", "Placing image %d again: %s before it ran", img.index, why)
		}
		replaced++
	}
	if more := replaced - r.cfg.MaxPlacementEvents; more > 0 {
		s.event(corev1.EventTypeWarning, "Replacing", "Place",
			"Placing %d more images again: their GPUs turned unhealthy or went away before they ran", more)
	}
	s.st.refresh()
	return errors.Join(errs...)
}

// newPod is a pod to create and the decision behind it.
type newPod struct {
	index    int32
	seq      int32
	place    podPlacement
	retryWhy string
}

// MaxPodsPerSync is how many pods one reconcile of a job creates at most, as the Job
// controller does: a 10000-image job starts over several reconciles, each of which writes its
// status, instead of 10000 creations in one.
const MaxPodsPerSync = 500

// placeAndCreate chooses a GPU for each image that needs a pod (up to spec.parallelism active
// pods, MaxPodsPerSync at a time) and creates the pods. It returns how many pods it created.
func (r *ImageGenerationJobReconciler) placeAndCreate(ctx context.Context, s *syncState,
	nodes map[string]*sdfleetv1alpha1.GPUNode) (int, error) {
	job, st := s.job, s.st
	limit := int(st.images)
	if job.Spec.Parallelism != nil {
		limit = int(*job.Spec.Parallelism) - int(st.active)
	}
	indexes := st.toPlace(limit)
	r.demands.set(s.key, int(st.active)+len(indexes))
	if len(indexes) == 0 {
		return 0, nil
	}
	plans, err := r.decide(ctx, s, nodes, indexes)
	if err != nil {
		return 0, err
	}
	return r.createPods(ctx, s, plans), nil
}

// decide places the images under the placement lock and reserves each decision in the ledger
// before any pod is created, so that concurrent reconciles see them.
func (r *ImageGenerationJobReconciler) decide(ctx context.Context, s *syncState,
	nodes map[string]*sdfleetv1alpha1.GPUNode, indexes []int32) ([]newPod, error) {
	job, st := s.job, s.st
	gpus, err := r.candidateGPUs(ctx, job, nodes)
	if err != nil {
		return nil, err
	}
	base := placement.Request{
		MemoryPerImage:   r.memoryEstimate(job).Bytes,
		Policy:           job.Spec.Placement.Policy,
		AllowCPUFallback: job.Spec.Placement.AllowCPUFallback == nil || *job.Spec.Placement.AllowCPUFallback,
	}
	if base.Policy == "" {
		base.Policy = sdfleetv1alpha1.PlacementLeastLoaded
	}
	work := imageWork(job)
	for _, g := range job.Spec.Placement.GPUs {
		base.Pinned = append(base.Pinned, placement.GPURef{Node: g.Node, UUID: g.UUID, Index: g.Index})
	}

	r.placeMu.Lock()
	defer r.placeMu.Unlock()
	indexes = r.fairLimit(s, nodes, indexes)

	// Retries go first, one by one, each avoiding the GPUs its image failed on; then the
	// fresh images in one batch, so that batch policies (RoundRobin) see them together.
	var retries, fresh []int32
	for _, i := range indexes {
		if img := st.byIndex[i]; img != nil && len(img.failedGPUs) > 0 {
			retries = append(retries, i)
		} else {
			fresh = append(fresh, i)
		}
	}

	var plans []newPod
	// place decides for batch and reports whether any image got a GPU or the CPU.
	place := func(batch []int32, req placement.Request) bool {
		req.Images = len(batch)
		decisions, err := r.engine.Place(r.snapshot(gpus, nodes, work), req)
		if err != nil {
			for _, i := range batch {
				st.image(i).waiting = "placement failed: " + err.Error()
			}
			return false
		}
		placed := false
		for k, i := range batch {
			if k >= len(decisions) {
				st.image(i).waiting = "placement gave no decision for this image"
				continue
			}
			placed = placed || decisions[k].Outcome != placement.OutcomeWait
			if plan, ok := r.reserve(s, i, decisions[k], req.MemoryPerImage, work); ok {
				plans = append(plans, plan)
			}
		}
		return placed
	}
	// At most MaxPodsPerSync pods per reconcile: the images beyond wait for the next one,
	// which comes at once.
	full := func(left int) bool {
		if len(plans) < MaxPodsPerSync {
			return false
		}
		if left > 0 {
			s.requeue(nextSyncDelay)
		}
		return true
	}
	for k, i := range retries {
		if full(len(retries) - k + len(fresh)) {
			return plans, nil
		}
		req := base
		req.Avoid = st.byIndex[i].failedGPUs
		place([]int32{i}, req)
	}
	if base.Policy == sdfleetv1alpha1.PlacementRoundRobin {
		// RoundRobin deals the whole batch over GPUs sorted once.
		n := max(min(len(fresh), MaxPodsPerSync-len(plans)), 0)
		if n > 0 {
			place(fresh[:n], base)
		}
		if n < len(fresh) {
			s.requeue(nextSyncDelay)
		}
		return plans, nil
	}
	// Other policies decide image by image anyway; deciding in chunks lets a large job stop
	// at the first chunk where every image waits: a wait reserves nothing, so the images after
	// it would meet the same snapshot and wait too. That keeps a 10000-image job that waits
	// for room from costing 10000 decisions per reconcile.
	for start := 0; start < len(fresh); {
		if full(len(fresh) - start) {
			break
		}
		chunk := fresh[start:min(start+placementChunk, start+MaxPodsPerSync-len(plans), len(fresh))]
		start += len(chunk)
		if place(chunk, base) {
			continue
		}
		reason := st.image(chunk[len(chunk)-1]).waiting
		for _, i := range fresh[start:] {
			st.image(i).waiting = reason
		}
		break
	}
	return plans, nil
}

// placementChunk is how many fresh images one placement call decides.
const placementChunk = 256

// reserve turns one decision into a pod plan and records it in the ledger.
func (r *ImageGenerationJobReconciler) reserve(s *syncState, index int32, d placement.Decision, bytes int64, work float64) (newPod, bool) {
	img := s.st.image(index)
	plan := newPod{index: index, seq: img.nextSeq}
	switch d.Outcome {
	case placement.OutcomeGPU:
		plan.place = podPlacement{Node: d.GPU.Node, GPUIndex: d.GPU.Index, GPUUUID: d.GPU.UUID,
			LoadPercent: loadPercent(d.Load), Policy: d.Policy, Bytes: bytes, Work: work}
		if plan.place.Policy == "" {
			plan.place.Policy = s.job.Spec.Placement.Policy
		}
		// What explain-placement shows: the GPUs compared, as they were at this moment.
		record := placementrecord.Of(d, bytes)
		record.Policy = plan.place.Policy
		plan.place.Record = placementrecord.Encode(record)
	case placement.OutcomeCPU:
		plan.place = podPlacement{CPU: true, Policy: d.Policy, Work: work}
	default:
		reason := d.Reason
		if reason == "" {
			reason = "no GPU has room"
		}
		img.waiting = reason
		return newPod{}, false
	}
	img.waiting = ""
	if img.last != nil && plan.seq > 0 {
		plan.retryWhy = string(img.last.failure)
	} else if plan.seq > 0 {
		plan.retryWhy = "Lost"
	}
	pod := types.NamespacedName{Namespace: s.job.Namespace, Name: PodName(s.job.Name, index, plan.seq)}
	ok := r.ledger.Reserve(pod, ledger.Placement{Job: s.key, Index: index, Node: plan.place.Node,
		GPUIndex: plan.place.GPUIndex, GPUUUID: plan.place.GPUUUID, Bytes: plan.place.Bytes, Work: work,
		GPUUsedBytes: d.GPU.MemoryUsedBytes})
	return plan, ok
}

// loadPercent turns a load in [0, 1] into a whole percentage.
func loadPercent(load float64) int32 {
	if math.IsNaN(load) || load < 0 {
		return 0
	}
	return int32(math.Min(100, math.Round(load*100)))
}

// candidateGPUs lists the GPUs the job may use (the nodes matching its nodeSelector), without
// their usage.
func (r *ImageGenerationJobReconciler) candidateGPUs(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob,
	nodes map[string]*sdfleetv1alpha1.GPUNode) ([]placement.GPU, error) {
	selector := labels.SelectorFromSet(job.Spec.Placement.NodeSelector)
	var gpus []placement.GPU
	for name, gn := range nodes {
		if len(gn.Status.GPUs) == 0 {
			continue
		}
		if len(job.Spec.Placement.NodeSelector) > 0 {
			var node corev1.Node
			if err := r.client.Get(ctx, types.NamespacedName{Name: name}, &node); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("get Node %s to match spec.placement.nodeSelector: %w", name, err)
			}
			if !selector.Matches(labels.Set(node.Labels)) {
				continue
			}
		}
		// Silence is judged by when the manager saw the heartbeat, on its own clock.
		heartbeat := r.heartbeats.seen(gn)
		staleAfter := r.staleAfter(gn)
		r.restoreSpeeds(gn)
		for _, g := range gn.Status.GPUs {
			gpus = append(gpus, placement.GPU{
				Node: name, Index: g.Index, UUID: g.UUID,
				MemoryUsedBytes: g.MemoryUsedBytes, MemoryTotalBytes: g.MemoryTotalBytes,
				UtilizationPercent: g.UtilizationPercent, TemperatureCelsius: g.TemperatureCelsius,
				Healthy: g.Health == sdfleetv1alpha1.GPUHealthy, Heartbeat: heartbeat, StaleAfter: staleAfter,
				Slots: g.Slots,
			})
		}
	}
	// Map order is random; a stable order keeps decisions reproducible.
	sort.Slice(gpus, func(a, b int) bool {
		if gpus[a].Node != gpus[b].Node {
			return gpus[a].Node < gpus[b].Node
		}
		return gpus[a].Index < gpus[b].Index
	})
	return gpus, nil
}

// staleAfter is how long after its last heartbeat a GPUNode counts as silent: three of the
// intervals its agent says it writes at when nothing changes, else three sampling intervals.
func (r *ImageGenerationJobReconciler) staleAfter(gn *sdfleetv1alpha1.GPUNode) time.Duration {
	if hb := gn.Status.HeartbeatIntervalSeconds; hb > 0 {
		return 3 * time.Duration(hb) * time.Second
	}
	return 3 * r.cfg.Placement.SampleInterval
}

// waitRecheck is how soon a job whose images wait for a GPU looks again without being woken:
// the shortest interval at which a GPUNode writes when nothing changes (its heartbeat), which
// is well within the time after which it counts as silent. Without GPUNodes, a third of the
// default staleness.
func (r *ImageGenerationJobReconciler) waitRecheck(nodes map[string]*sdfleetv1alpha1.GPUNode) time.Duration {
	shortest := time.Duration(0)
	for _, gn := range nodes {
		d := r.cfg.Placement.SampleInterval
		if hb := gn.Status.HeartbeatIntervalSeconds; hb > 0 {
			d = time.Duration(hb) * time.Second
		}
		if shortest == 0 || d < shortest {
			shortest = d
		}
	}
	if shortest == 0 {
		shortest = r.cfg.Placement.SampleInterval
	}
	return shortest
}

// snapshot adds the ledger's reservations, slot usage and work in flight, and the learned
// speeds, to the candidate GPUs, for images of work megapixel-steps each. Called with placeMu
// held, so it sees every reservation made before.
func (r *ImageGenerationJobReconciler) snapshot(gpus []placement.GPU, nodes map[string]*sdfleetv1alpha1.GPUNode, work float64) placement.Snapshot {
	now := r.now()
	sampledFrom := func(gn *sdfleetv1alpha1.GPUNode) time.Time {
		if gn.Status.LastHeartbeatTime == nil {
			return time.Time{}
		}
		interval := time.Duration(gn.Status.SampleIntervalSeconds) * time.Second
		if interval <= 0 {
			interval = r.cfg.Placement.SampleInterval
		}
		return gn.Status.LastHeartbeatTime.Add(-interval)
	}
	usage := r.ledger.Usage(func(node, uuid string) ledger.GPUView {
		gn := nodes[node]
		if gn == nil {
			return ledger.GPUView{}
		}
		for _, g := range gn.Status.GPUs {
			if g.UUID == uuid {
				return ledger.GPUView{Known: true, UsedBytes: g.MemoryUsedBytes, VisibleSince: sampledFrom(gn)}
			}
		}
		return ledger.GPUView{}
	})
	out := make([]placement.GPU, len(gpus))
	copy(out, gpus)
	for i := range out {
		g := &out[i]
		g.SlotsInUse = usage.SlotsInUse[g.UUID]
		f := throughput.Figures{UUID: g.UUID, UtilizationPercent: g.UtilizationPercent,
			Ours: len(usage.InFlight[g.UUID]) > 0, Now: now}
		if gn := nodes[g.Node]; gn != nil {
			f.SampledFrom = sampledFrom(gn)
			for _, st := range gn.Status.GPUs {
				if st.UUID == g.UUID {
					f.Product = st.ProductName
					break
				}
			}
		}
		r.speeds.Describe(f)
	}
	r.speeds.Annotate(out, usage.InFlight, now, work)
	return placement.Snapshot{GPUs: out, Reservations: usage.Reservations, Now: now}
}

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// nextSyncDelay is how soon a job whose reconcile stopped at MaxPodsPerSync goes on.
const nextSyncDelay = 100 * time.Millisecond

// slowStart calls create for 0..n-1 in batches of 1, 2, 4, ... (each batch in parallel, at most
// concurrency at a time), as the Job controller creates pods: it stops after the first batch in
// which a call failed, so that a quota or admission webhook refusing every pod costs one
// request, not n. It returns how many calls were made.
func slowStart(n, concurrency int, create func(i int) error) int {
	done := 0
	for batch := 1; done < n; batch *= 2 {
		size := min(batch, n-done)
		var failed atomic.Bool
		var g errgroup.Group
		g.SetLimit(concurrency)
		for i := done; i < done+size; i++ {
			g.Go(func() error {
				if create(i) != nil {
					failed.Store(true)
				}
				return nil
			})
		}
		_ = g.Wait()
		done += size
		if failed.Load() {
			break
		}
	}
	return done
}

// createPods creates the planned pods with slow start. AlreadyExists counts as success when the
// pod of that name is this job's (an earlier creation the cache had not shown yet); a pod of
// that name that the job does not control is reported and left alone. Plans left when creation
// stopped release their reservations and are placed again by a later reconcile. It returns how
// many pods exist now.
func (r *ImageGenerationJobReconciler) createPods(ctx context.Context, s *syncState, plans []newPod) int {
	log := logf.FromContext(ctx)
	var mu sync.Mutex
	var errs []error
	created := make([]bool, len(plans))
	taken := make([]bool, len(plans))
	tried := slowStart(len(plans), r.cfg.CreateConcurrency, func(k int) error {
		plan := plans[k]
		pod := buildPod(s.job, plan.index, plan.seq, s.seed, plan.place, r.cfg.DefaultImage)
		err := r.client.Create(ctx, pod)
		switch {
		case err == nil:
			created[k] = true
		case apierrors.IsAlreadyExists(err):
			// Either our own earlier creation, which the cache had not shown when this
			// reconcile read it (the informer records the real pod from its annotations, or
			// already did and saw it finish: this reservation would only be a phantom), or
			// somebody else's pod.
			r.ledger.Release(client.ObjectKeyFromObject(pod))
			ours, err := r.controlsPod(ctx, s.job, client.ObjectKeyFromObject(pod))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("create pod %s for image %d: it exists, but %w", pod.Name, plan.index, err))
				return err
			case ours:
				created[k] = true
			default:
				taken[k] = true
				errs = append(errs, fmt.Errorf("create pod %s for image %d: a pod of that name exists and is not "+
					"controlled by ImageGenerationJob %s (UID %s)", pod.Name, plan.index, s.key, s.job.UID))
			}
		default:
			r.ledger.Release(client.ObjectKeyFromObject(pod))
			mu.Lock()
			errs = append(errs, fmt.Errorf("create pod %s for image %d: %w", pod.Name, plan.index, err))
			mu.Unlock()
			return err
		}
		return nil
	})
	for _, plan := range plans[tried:] {
		r.ledger.Release(types.NamespacedName{Namespace: s.job.Namespace, Name: PodName(s.job.Name, plan.index, plan.seq)})
	}

	n, events := 0, 0
	placedElsewhere, retried, takenNames := 0, 0, 0
	for k, plan := range plans {
		img := s.st.image(plan.index)
		if taken[k] {
			name := PodName(s.job.Name, plan.index, plan.seq)
			img.waiting = fmt.Sprintf("pod %s already exists and this job does not control it; the image waits "+
				"until that pod is deleted", name)
			if takenNames < r.cfg.MaxPlacementEvents {
				s.event(corev1.EventTypeWarning, ReasonPodNameTaken, "Create",
					"Cannot create pod %s for image %d: a pod of that name exists and this job does not control it; "+
						"it is left alone, and the image waits until it is deleted", name, plan.index)
			}
			takenNames++
			continue
		}
		if !created[k] {
			img.waiting = "could not create its pod; retrying"
			continue
		}
		n++
		info := podInfo{name: PodName(s.job.Name, plan.index, plan.seq), index: plan.index, seq: plan.seq, kind: podPending,
			node: plan.place.Node, gpuUUID: plan.place.GPUUUID, bytes: plan.place.Bytes, device: DeviceGPU}
		uuidLabel, nodeLabel := plan.place.GPUUUID, plan.place.Node
		if plan.place.CPU {
			info.device, uuidLabel, nodeLabel = DeviceCPU, DeviceCPU, ""
		} else {
			gi, load := plan.place.GPUIndex, plan.place.LoadPercent
			info.gpuIndex, info.loadPercent = &gi, &load
		}
		img.pods = append(img.pods, info)
		img.evaluate(backoffLimit(s.job))
		placementDecisions.WithLabelValues(nodeLabel, uuidLabel, string(plan.place.Policy)).Inc()
		if plan.retryWhy != "" {
			imageRetries.WithLabelValues(plan.retryWhy).Inc()
		}

		switch {
		case plan.place.CPU:
			if events < r.cfg.MaxPlacementEvents {
				s.event(corev1.EventTypeNormal, "FellBackToCPU", "Place",
					"Running image %d on the CPU: the cluster has no usable GPU", plan.index)
				events++
			} else {
				placedElsewhere++
			}
		case plan.retryWhy != "" && plan.retryWhy != "Lost":
			last := img.last
			failedOn := ""
			if last != nil && last.gpuUUID != "" {
				failedOn = " on " + last.gpuUUID
			}
			where := "on another GPU"
			if containsString(img.failedGPUs, plan.place.GPUUUID) {
				where = "on a GPU it failed on before (no other has room)"
			}
			if retried < r.cfg.MaxPlacementEvents {
				s.event(corev1.EventTypeNormal, "Retrying", "Place", "Retrying image %d %s after %s%s: now on %s GPU %d (%s)",
					plan.index, where, retryWords(plan.retryWhy), failedOn, plan.place.Node, plan.place.GPUIndex, plan.place.GPUUUID)
			}
			retried++
		case events < r.cfg.MaxPlacementEvents:
			s.event(corev1.EventTypeNormal, "Placed", "Place", "Placed image %d on %s GPU %d (%s) at %d%% memory",
				plan.index, plan.place.Node, plan.place.GPUIndex, plan.place.GPUUUID, plan.place.LoadPercent)
			events++
		default:
			placedElsewhere++
		}
	}
	if placedElsewhere > 0 {
		s.event(corev1.EventTypeNormal, "Placed", "Place", "Placed %d more images", placedElsewhere)
	}
	if more := retried - r.cfg.MaxPlacementEvents; more > 0 {
		s.event(corev1.EventTypeNormal, "Retrying", "Place", "Retrying %d more failed images", more)
	}
	if more := takenNames - r.cfg.MaxPlacementEvents; more > 0 {
		s.event(corev1.EventTypeWarning, ReasonPodNameTaken, "Create",
			"%d more images wait because pods of their names exist and this job does not control them", more)
	}
	s.st.refresh()
	if len(errs) > 0 {
		err := errors.Join(errs...)
		log.Error(err, "some image pods could not be created", "job", s.key)
		s.createErr = err
	}
	return n
}

// controlsPod reports whether the pod key exists and is controlled by job (same UID), reading
// past the cache.
func (r *ImageGenerationJobReconciler) controlsPod(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob,
	key types.NamespacedName) (bool, error) {
	var pod corev1.Pod
	if err := r.apiReader.Get(ctx, key, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return false, fmt.Errorf("it went away before it could be read; retrying")
		}
		return false, fmt.Errorf("reading it failed: %w", err)
	}
	return metav1.IsControlledBy(&pod, job), nil
}

func retryWords(reason string) string {
	switch reason {
	case "OutOfMemory":
		return "OOM"
	case "DeviceError":
		return "a device error"
	case "NoResult":
		return "an exit without a result"
	default:
		return "a failure"
	}
}
