package controllers

import (
	"context"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// CacheByObject restricts the manager's pod cache to image pods, so the controller does not
// hold every pod of the cluster in memory. Pass it as cache.Options.ByObject.
func CacheByObject() map[client.Object]cache.ByObject {
	req, err := labels.NewRequirement(LabelJobUID, selection.Exists, nil)
	if err != nil {
		// The requirement is a constant; failing here is a programming error.
		panic(err)
	}
	return map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: labels.NewSelector().Add(*req)},
	}
}

// SetupWithManager registers the controller and its watches: jobs (spec changes only: the
// controller's own status writes do not wake it), image pods (phase and termination changes,
// batched), GPUNodes (GPU changes wake the jobs waiting for room and the jobs with pods on the
// node) and PersistentVolumeClaims (a created claim wakes the jobs that named it).
func (r *ImageGenerationJobReconciler) SetupWithManager(mgr ctrl.Manager) error {
	skip := r.cfg.SkipNameValidation
	r.apiReader = mgr.GetAPIReader()
	// The learned speeds are written by the leader only, every SpeedPublishInterval.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		ticker := time.NewTicker(r.cfg.SpeedPublishInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
				r.publishSpeeds(ctx)
			}
		}
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagegenerationjob").
		For(&sdfleetv1alpha1.ImageGenerationJob{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, &podHandler{r: r}, builder.WithPredicates(predicate.NewPredicateFuncs(isImagePod))).
		Watches(&sdfleetv1alpha1.GPUNode{}, &gpuNodeHandler{r: r}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.jobsNamingClaim),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(event.UpdateEvent) bool { return false },
			})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.cfg.MaxConcurrentReconciles,
			SkipNameValidation:      &skip,
		}).
		Complete(r)
}

func isImagePod(obj client.Object) bool {
	_, ok := obj.GetLabels()[LabelJobUID]
	return ok
}

// ownerJob is the job that controls an image pod.
func ownerJob(pod *corev1.Pod) (types.NamespacedName, bool) {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && ref.Kind == "ImageGenerationJob" &&
			ref.APIVersion == sdfleetv1alpha1.GroupVersion.String() {
			return types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}, true
		}
	}
	return types.NamespacedName{}, false
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// podHandler keeps the ledger up to date with every image pod and wakes the owning job, after
// the batch period, when a pod starts, finishes or goes. A pod that stops holding its GPU also
// wakes the jobs waiting for room.
type podHandler struct{ r *ImageGenerationJobReconciler }

// observe records the pod in the ledger. It returns the owning job and, for a pod the ledger
// saw running and that now ended, the mean number of pods that shared its GPU meanwhile.
func (h *podHandler) observe(pod *corev1.Pod) (types.NamespacedName, float64, bool) {
	job, ok := ownerJob(pod)
	if !ok {
		return job, 0, false
	}
	p, state, since := ledgerView(job, pod)
	p.Work = podWork(pod)
	concurrency := h.r.ledger.Observe(client.ObjectKeyFromObject(pod), p, state, since)
	return job, concurrency, true
}

func (h *podHandler) enqueue(q queue, job types.NamespacedName) {
	req := reconcile.Request{NamespacedName: job}
	if d := h.r.cfg.PodEventBatchPeriod; d > 0 {
		q.AddAfter(req, d)
	} else {
		q.Add(req)
	}
}

func (h *podHandler) wakeWaiting(q queue) {
	for _, job := range h.r.waiting.list() {
		h.enqueue(q, job)
	}
}

// Create records the pod; the job that created it needs no reconcile for it. After a restart
// these events rebuild the ledger.
func (h *podHandler) Create(_ context.Context, e event.CreateEvent, _ queue) {
	if pod, ok := e.Object.(*corev1.Pod); ok {
		h.observe(pod)
	}
}

func (h *podHandler) Update(_ context.Context, e event.UpdateEvent, q queue) {
	oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
	newPod, ok2 := e.ObjectNew.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	job, concurrency, ok := h.observe(newPod)
	if !ok || !podChanged(oldPod, newPod) {
		return
	}
	if concurrency > 0 && newPod.Status.Phase == corev1.PodSucceeded {
		h.r.learnFromFinish(newPod, concurrency)
	}
	h.enqueue(q, job)
	if holdsGPU(oldPod) && !holdsGPU(newPod) {
		h.wakeWaiting(q)
	}
}

func (h *podHandler) Delete(_ context.Context, e event.DeleteEvent, q queue) {
	pod, ok := e.Object.(*corev1.Pod)
	if !ok {
		return
	}
	h.r.ledger.Forget(client.ObjectKeyFromObject(pod))
	if job, ok := ownerJob(pod); ok {
		h.enqueue(q, job)
	}
	h.wakeWaiting(q)
}

func (h *podHandler) Generic(context.Context, event.GenericEvent, queue) {}

// podChanged reports a change the job's status reflects: phase, deletion, container states.
func podChanged(oldPod, newPod *corev1.Pod) bool {
	if oldPod.Status.Phase != newPod.Status.Phase || (oldPod.DeletionTimestamp == nil) != (newPod.DeletionTimestamp == nil) {
		return true
	}
	return !reflect.DeepEqual(oldPod.Status.ContainerStatuses, newPod.Status.ContainerStatuses)
}

func holdsGPU(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// gpuNodeHandler records when each GPUNode's heartbeat is seen and wakes jobs when the GPUs of
// a node change, a silent node speaks again, or a heartbeat may end memory reservations of
// images running there: the jobs waiting for room, and, when a GPU's health changes or the
// node goes, the jobs with pods on that node. Other heartbeats wake nobody; jobs that wait
// also look again once per heartbeat interval (waitRecheck), which covers a wake-up lost
// while they were deciding.
type gpuNodeHandler struct{ r *ImageGenerationJobReconciler }

func (h *gpuNodeHandler) wake(q queue, node string, withPodsOnNode bool) {
	seen := map[types.NamespacedName]bool{}
	add := func(job types.NamespacedName) {
		if !seen[job] {
			seen[job] = true
			q.Add(reconcile.Request{NamespacedName: job})
		}
	}
	for _, job := range h.r.waiting.list() {
		add(job)
	}
	if withPodsOnNode {
		for _, job := range h.r.ledger.JobsOnNode(node) {
			add(job)
		}
	}
}

func (h *gpuNodeHandler) Create(_ context.Context, e event.CreateEvent, q queue) {
	if gn, ok := e.Object.(*sdfleetv1alpha1.GPUNode); ok {
		h.r.heartbeats.observe(gn, h.r.now())
	}
	h.wake(q, e.Object.GetName(), false)
}

func (h *gpuNodeHandler) Update(_ context.Context, e event.UpdateEvent, q queue) {
	oldNode, ok1 := e.ObjectOld.(*sdfleetv1alpha1.GPUNode)
	newNode, ok2 := e.ObjectNew.(*sdfleetv1alpha1.GPUNode)
	if !ok1 || !ok2 {
		return
	}
	now := h.r.now()
	before := h.r.heartbeats.seen(oldNode)
	h.r.heartbeats.observe(newNode, now)
	switch {
	case !reflect.DeepEqual(oldNode.Status.GPUs, newNode.Status.GPUs):
		h.wake(q, newNode.Name, healthChanged(oldNode, newNode))
	case before.Before(now.Add(-h.r.staleAfter(newNode))) && !h.r.heartbeats.seen(newNode).Before(now.Add(-h.r.staleAfter(newNode))):
		// A node that had gone silent speaks again, maybe with the very same figures: its
		// GPUs are usable again, which the jobs waiting for room must hear.
		h.wake(q, newNode.Name, false)
	case !publishedHeartbeat(oldNode).Equal(publishedHeartbeat(newNode)) && h.r.waiting.len() > 0 && h.r.ledger.AwaitsSample(newNode.Name):
		// A new sample with the same figures can still show the memory of images that
		// started since the last one: their reservations end, and the room they kept frees
		// without any figure changing.
		h.wake(q, newNode.Name, false)
	}
	// Any other heartbeat changes no decision.
}

func (h *gpuNodeHandler) Delete(_ context.Context, e event.DeleteEvent, q queue) {
	h.r.heartbeats.forget(e.Object.GetName())
	if gn, ok := e.Object.(*sdfleetv1alpha1.GPUNode); ok {
		// The node left: what was learned of its GPUs goes with its GPUNode.
		for _, g := range gn.Status.GPUs {
			h.r.speeds.Forget(g.UUID)
		}
	}
	h.wake(q, e.Object.GetName(), true)
}

// heartbeatClock records, for each GPUNode, when the manager saw its heartbeat change, so that
// silence is judged on the manager's own clock: an agent whose clock runs ahead or behind is
// neither kept alive nor declared silent by the skew.
type heartbeatClock struct {
	mu    sync.Mutex
	nodes map[string]seenHeartbeat
}

type seenHeartbeat struct {
	published time.Time // status.lastHeartbeatTime
	seen      time.Time // when the manager saw it (its clock)
}

func newHeartbeatClock() *heartbeatClock { return &heartbeatClock{nodes: map[string]seenHeartbeat{}} }

func publishedHeartbeat(gn *sdfleetv1alpha1.GPUNode) time.Time {
	if gn.Status.LastHeartbeatTime == nil {
		return time.Time{}
	}
	return gn.Status.LastHeartbeatTime.Time
}

// observe records gn's heartbeat as seen at now when it changed. The first heartbeat of a node
// counts as seen when it says, or now if that is later than now: after a restart a node that
// was already silent stays silent until it writes again.
func (c *heartbeatClock) observe(gn *sdfleetv1alpha1.GPUNode, now time.Time) {
	published := publishedHeartbeat(gn)
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, known := c.nodes[gn.Name]
	switch {
	case published.IsZero():
		c.nodes[gn.Name] = seenHeartbeat{}
	case !known || prev.published.IsZero():
		seen := published
		if seen.After(now) {
			seen = now
		}
		c.nodes[gn.Name] = seenHeartbeat{published: published, seen: seen}
	case !published.Equal(prev.published):
		c.nodes[gn.Name] = seenHeartbeat{published: published, seen: now}
	}
}

// seen is when the manager saw gn's current heartbeat; a node it has not observed counts by its
// published heartbeat.
func (c *heartbeatClock) seen(gn *sdfleetv1alpha1.GPUNode) time.Time {
	published := publishedHeartbeat(gn)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.nodes[gn.Name]; ok && s.published.Equal(published) {
		return s.seen
	}
	return published
}

func (c *heartbeatClock) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, name)
}

func (h *gpuNodeHandler) Generic(context.Context, event.GenericEvent, queue) {}

// healthChanged reports whether a GPU became unhealthy or disappeared.
func healthChanged(oldNode, newNode *sdfleetv1alpha1.GPUNode) bool {
	health := map[string]sdfleetv1alpha1.GPUHealth{}
	for _, g := range newNode.Status.GPUs {
		health[g.UUID] = g.Health
	}
	for _, g := range oldNode.Status.GPUs {
		if h, ok := health[g.UUID]; !ok || h != g.Health {
			return true
		}
	}
	return false
}

// jobsNamingClaim maps a PersistentVolumeClaim to the unfinished jobs of its namespace that use
// it.
func (r *ImageGenerationJobReconciler) jobsNamingClaim(ctx context.Context, obj client.Object) []reconcile.Request {
	var jobs sdfleetv1alpha1.ImageGenerationJobList
	if err := r.client.List(ctx, &jobs, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		// A map function cannot return an error; the jobs waiting for a claim also look again
		// every missingVolumeRecheck.
		logf.FromContext(ctx).Error(err, "cannot list the ImageGenerationJobs that may name a new PersistentVolumeClaim",
			"namespace", obj.GetNamespace(), "persistentVolumeClaim", obj.GetName())
		return nil
	}
	var out []reconcile.Request
	for i := range jobs.Items {
		job := &jobs.Items[i]
		for _, loc := range []sdfleetv1alpha1.StorageLocation{job.Spec.Model, job.Spec.Output} {
			if loc.PersistentVolumeClaim != nil && loc.PersistentVolumeClaim.ClaimName == obj.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(job)})
				break
			}
		}
	}
	return out
}
