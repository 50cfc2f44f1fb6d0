package controllers

import (
	"context"
	"reflect"

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

func (h *podHandler) observe(pod *corev1.Pod) (types.NamespacedName, bool) {
	job, ok := ownerJob(pod)
	if !ok {
		return job, false
	}
	p, state, since := ledgerView(job, pod)
	h.r.ledger.Observe(client.ObjectKeyFromObject(pod), p, state, since)
	return job, true
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
	job, ok := h.observe(newPod)
	if !ok || !podChanged(oldPod, newPod) {
		return
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

// gpuNodeHandler wakes jobs when the GPUs of a node change: the jobs waiting for room, and,
// when a GPU's health changes or the node goes, the jobs with pods on that node.
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
	h.wake(q, e.Object.GetName(), false)
}

func (h *gpuNodeHandler) Update(_ context.Context, e event.UpdateEvent, q queue) {
	oldNode, ok1 := e.ObjectOld.(*sdfleetv1alpha1.GPUNode)
	newNode, ok2 := e.ObjectNew.(*sdfleetv1alpha1.GPUNode)
	if !ok1 || !ok2 || reflect.DeepEqual(oldNode.Status.GPUs, newNode.Status.GPUs) {
		// A heartbeat alone changes no decision.
		return
	}
	h.wake(q, newNode.Name, healthChanged(oldNode, newNode))
}

func (h *gpuNodeHandler) Delete(_ context.Context, e event.DeleteEvent, q queue) {
	h.wake(q, e.Object.GetName(), true)
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
