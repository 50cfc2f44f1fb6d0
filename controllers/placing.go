package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
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

// placeAndCreate chooses a GPU for each image that needs a pod (up to spec.parallelism active
// pods) and creates the pods. It returns how many pods it created.
func (r *ImageGenerationJobReconciler) placeAndCreate(ctx context.Context, s *syncState,
	nodes map[string]*sdfleetv1alpha1.GPUNode) (int, error) {
	job, st := s.job, s.st
	limit := int(st.images)
	if job.Spec.Parallelism != nil {
		limit = int(*job.Spec.Parallelism) - int(st.active)
	}
	indexes := st.toPlace(limit)
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
		MemoryPerImage:   memoryPerImage(job),
		Policy:           job.Spec.Placement.Policy,
		AllowCPUFallback: job.Spec.Placement.AllowCPUFallback == nil || *job.Spec.Placement.AllowCPUFallback,
	}
	if base.Policy == "" {
		base.Policy = sdfleetv1alpha1.PlacementLeastLoaded
	}
	for _, g := range job.Spec.Placement.GPUs {
		base.Pinned = append(base.Pinned, placement.GPURef{Node: g.Node, UUID: g.UUID, Index: g.Index})
	}

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

	r.placeMu.Lock()
	defer r.placeMu.Unlock()
	var plans []newPod
	// place decides for batch and reports whether any image got a GPU or the CPU.
	place := func(batch []int32, req placement.Request) bool {
		req.Images = len(batch)
		decisions, err := r.engine.Place(r.snapshot(gpus, nodes), req)
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
			if plan, ok := r.reserve(s, i, decisions[k], req.MemoryPerImage); ok {
				plans = append(plans, plan)
			}
		}
		return placed
	}
	for _, i := range retries {
		req := base
		req.Avoid = st.byIndex[i].failedGPUs
		place([]int32{i}, req)
	}
	if base.Policy == sdfleetv1alpha1.PlacementRoundRobin {
		// RoundRobin deals the whole batch over GPUs sorted once.
		if len(fresh) > 0 {
			place(fresh, base)
		}
		return plans, nil
	}
	// Other policies decide image by image anyway; deciding in chunks lets a large job stop
	// at the first chunk where every image waits: a wait reserves nothing, so the images after
	// it would meet the same snapshot and wait too. That keeps a 10000-image job that waits
	// for room from costing 10000 decisions per reconcile.
	for start := 0; start < len(fresh); start += placementChunk {
		chunk := fresh[start:min(start+placementChunk, len(fresh))]
		if place(chunk, base) {
			continue
		}
		reason := st.image(chunk[len(chunk)-1]).waiting
		for _, i := range fresh[start+len(chunk):] {
			st.image(i).waiting = reason
		}
		break
	}
	return plans, nil
}

// placementChunk is how many fresh images one placement call decides.
const placementChunk = 256

// reserve turns one decision into a pod plan and records it in the ledger.
func (r *ImageGenerationJobReconciler) reserve(s *syncState, index int32, d placement.Decision, bytes int64) (newPod, bool) {
	img := s.st.image(index)
	plan := newPod{index: index, seq: img.nextSeq}
	switch d.Outcome {
	case placement.OutcomeGPU:
		plan.place = podPlacement{Node: d.GPU.Node, GPUIndex: d.GPU.Index, GPUUUID: d.GPU.UUID,
			LoadPercent: loadPercent(d.Load), Policy: d.Policy, Bytes: bytes}
		if plan.place.Policy == "" {
			plan.place.Policy = s.job.Spec.Placement.Policy
		}
	case placement.OutcomeCPU:
		plan.place = podPlacement{CPU: true, Policy: d.Policy}
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
		GPUIndex: plan.place.GPUIndex, GPUUUID: plan.place.GPUUUID, Bytes: plan.place.Bytes})
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
		var heartbeat time.Time
		if gn.Status.LastHeartbeatTime != nil {
			heartbeat = gn.Status.LastHeartbeatTime.Time
		}
		// An agent that says how often it writes when nothing changes is silent only after
		// three of those intervals; otherwise placement's sampling interval applies.
		var staleAfter time.Duration
		if hb := gn.Status.HeartbeatIntervalSeconds; hb > 0 {
			staleAfter = 3 * time.Duration(hb) * time.Second
		}
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

// snapshot adds the ledger's reservations and slot usage to the candidate GPUs. Called with
// placeMu held, so it sees every reservation made before.
func (r *ImageGenerationJobReconciler) snapshot(gpus []placement.GPU, nodes map[string]*sdfleetv1alpha1.GPUNode) placement.Snapshot {
	usage := r.ledger.Usage(func(node string) time.Time {
		gn := nodes[node]
		if gn == nil || gn.Status.LastHeartbeatTime == nil {
			return time.Time{}
		}
		interval := time.Duration(gn.Status.SampleIntervalSeconds) * time.Second
		if interval <= 0 {
			interval = r.cfg.Placement.SampleInterval
		}
		return gn.Status.LastHeartbeatTime.Add(-interval)
	})
	out := make([]placement.GPU, len(gpus))
	copy(out, gpus)
	for i := range out {
		out[i].SlotsInUse = usage.SlotsInUse[out[i].UUID]
	}
	return placement.Snapshot{GPUs: out, Reservations: usage.Reservations, Now: r.now()}
}

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// memoryPerImage is spec.gpuMemoryPerImage, else an estimate from the image size: about 3 GiB
// of fp16 weights and working memory for a 512x512 image of an SD 1.x/2.x model, plus the
// activations, which grow with the pixel count. SDXL-sized images (1024x1024) come to 7 GiB.
func memoryPerImage(job *sdfleetv1alpha1.ImageGenerationJob) int64 {
	if q := job.Spec.GPUMemoryPerImage; q != nil && q.Value() > 0 {
		return q.Value()
	}
	w, h := int64(job.Spec.Width), int64(job.Spec.Height)
	if w <= 0 {
		w = 512
	}
	if h <= 0 {
		h = 512
	}
	return 2*GiB + GiB*w*h/(512*512)
}

// createPods creates the planned pods in parallel. AlreadyExists counts as success when the
// pod of that name is this job's (an earlier creation the cache had not shown yet); a pod of
// that name that the job does not control is reported and left alone. It returns how many
// pods exist now.
func (r *ImageGenerationJobReconciler) createPods(ctx context.Context, s *syncState, plans []newPod) int {
	log := logf.FromContext(ctx)
	var mu sync.Mutex
	var errs []error
	created := make([]bool, len(plans))
	taken := make([]bool, len(plans))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.CreateConcurrency)
	for k := range plans {
		plan := plans[k]
		g.Go(func() error {
			pod := buildPod(s.job, plan.index, plan.seq, s.seed, plan.place, r.cfg.DefaultImage)
			err := r.client.Create(gctx, pod)
			switch {
			case err == nil:
				created[k] = true
			case apierrors.IsAlreadyExists(err):
				// Either our own earlier creation, which the cache had not shown when this
				// reconcile read it (the informer records the real pod from its annotations, or
				// already did and saw it finish: this reservation would only be a phantom), or
				// somebody else's pod.
				r.ledger.Release(client.ObjectKeyFromObject(pod))
				ours, err := r.controlsPod(gctx, s.job, client.ObjectKeyFromObject(pod))
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("create pod %s for image %d: it exists, but %w", pod.Name, plan.index, err))
				case ours:
					created[k] = true
				default:
					taken[k] = true
					errs = append(errs, fmt.Errorf("create pod %s for image %d: a pod of that name exists and is not "+
						"controlled by ImageGenerationJob %s (UID %s)", pod.Name, plan.index, s.key, s.job.UID))
				}
				mu.Unlock()
			default:
				r.ledger.Release(client.ObjectKeyFromObject(pod))
				mu.Lock()
				errs = append(errs, fmt.Errorf("create pod %s for image %d: %w", pod.Name, plan.index, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()

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
