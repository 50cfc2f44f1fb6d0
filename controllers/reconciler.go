package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/indexset"
	"github.com/sdfleet/sdfleet/controllers/jobpolicy"
	"github.com/sdfleet/sdfleet/controllers/ledger"
	"github.com/sdfleet/sdfleet/controllers/memorymodel"
	"github.com/sdfleet/sdfleet/controllers/placement"
	"github.com/sdfleet/sdfleet/controllers/throughput"
)

// Permissions of the controller: least privilege, no secrets.
// +kubebuilder:rbac:groups=sdfleet.io,resources=imagegenerationjobs,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=sdfleet.io,resources=imagegenerationjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sdfleet.io,resources=gpunodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch

// Config tunes the reconciler. Zero values take the defaults.
type Config struct {
	// DefaultImage is the container image of the inference binary for jobs that name none.
	DefaultImage string
	// Policy is what host paths and images jobs may use; the zero Policy allows no host path
	// and no spec.image (jobs then run DefaultImage).
	Policy jobpolicy.Policy
	// PodEventBatchPeriod delays the reconcile that a pod change triggers, so that the changes
	// of many pods are folded into one status write (default 1s; negative means no delay).
	PodEventBatchPeriod time.Duration
	// MaxConcurrentReconciles is how many jobs are reconciled at once (default 4).
	MaxConcurrentReconciles int
	// CreateConcurrency is how many pods one reconcile creates in parallel (default 32).
	CreateConcurrency int
	// Placement configures the placement engine.
	Placement placement.Config
	// MaxPlacementEvents is how many events of each kind ("Placed image ...", "Retrying image
	// ...", "Placing image ... again", PodNameTaken) one reconcile emits before it summarises
	// the rest in one event (default 10).
	MaxPlacementEvents int
	// SkipNameValidation lets several managers in one process (tests) register the
	// controller.
	SkipNameValidation bool
	// SpeedPublishInterval is how often the GPU speeds learned since the last write are
	// written to the GPUNodes' status (default 10s).
	SpeedPublishInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.PodEventBatchPeriod == 0 {
		c.PodEventBatchPeriod = time.Second
	}
	if c.PodEventBatchPeriod < 0 {
		c.PodEventBatchPeriod = 0
	}
	if c.MaxConcurrentReconciles <= 0 {
		c.MaxConcurrentReconciles = 4
	}
	if c.CreateConcurrency <= 0 {
		c.CreateConcurrency = 32
	}
	if c.MaxPlacementEvents <= 0 {
		c.MaxPlacementEvents = 10
	}
	if c.Placement.SampleInterval <= 0 {
		c.Placement.SampleInterval = time.Second
	}
	if c.SpeedPublishInterval <= 0 {
		c.SpeedPublishInterval = 10 * time.Second
	}
	return c
}

// ImageGenerationJobReconciler runs the image pods of ImageGenerationJobs.
type ImageGenerationJobReconciler struct {
	client client.Client
	// apiReader reads from the API server, past the cache: a pod whose name is taken is looked
	// up there, since the cache holds only image pods.
	apiReader client.Reader
	recorder  events.EventRecorder
	cfg       Config
	now       func() time.Time

	// placeMu serialises placement decisions across jobs: each one must see the reservations
	// of the one before, and the engine's round-robin cursor is not safe for concurrent use.
	placeMu sync.Mutex
	engine  *placement.Engine
	ledger  *ledger.Ledger
	// speeds learns each GPU's speed from the images that finish; speedsToPublish are the
	// nodes whose learned figures changed since they were last written.
	speeds          *throughput.Learner
	speedsToPublish *nodeSet
	// memory learns each model's peak memory per pixel from the images that finish.
	memory *memorymodel.Learner
	// heartbeats are when the manager saw each GPUNode's heartbeat change.
	heartbeats *heartbeatClock
	// demands are the GPU slots each job holds or wants, which its fair share is cut from.
	demands *jobDemands

	// waiting are the jobs with images waiting for a GPU; GPU and pod changes re-examine them.
	waiting *jobSet
	gauges  *jobGauges

	// heldEvents are events of actions already taken (pods created or deleted) whose status
	// write failed: they are emitted after the next successful write, so that the story a
	// user reads is not missing a step.
	heldMu     sync.Mutex
	heldEvents map[types.NamespacedName][]pendingEvent
}

// maxHeldEvents bounds the events held for one job between failed status writes.
const maxHeldEvents = 64

// holdEvents keeps the events of a reconcile whose status write failed.
func (r *ImageGenerationJobReconciler) holdEvents(key types.NamespacedName, evs []pendingEvent) {
	if len(evs) == 0 {
		return
	}
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	held := append(r.heldEvents[key], evs...)
	if len(held) > maxHeldEvents {
		held = held[len(held)-maxHeldEvents:]
	}
	r.heldEvents[key] = held
}

// takeHeldEvents returns and forgets the events held for a job.
func (r *ImageGenerationJobReconciler) takeHeldEvents(key types.NamespacedName) []pendingEvent {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	evs := r.heldEvents[key]
	delete(r.heldEvents, key)
	return evs
}

// NewReconciler returns a reconciler that reads through c (the manager's cached client) and
// records events with recorder.
func NewReconciler(c client.Client, recorder events.EventRecorder, cfg Config) *ImageGenerationJobReconciler {
	cfg = cfg.withDefaults()
	return &ImageGenerationJobReconciler{
		client:    c,
		apiReader: c,
		recorder:  recorder,
		cfg:       cfg,
		now:       time.Now,
		engine:    placement.New(cfg.Placement),
		ledger:    ledger.New(nil),
		waiting:   newJobSet(),
		gauges:    newJobGauges(),

		speeds:          throughput.NewLearner(0),
		speedsToPublish: newNodeSet(),
		memory:          memorymodel.NewLearner(),
		heartbeats:      newHeartbeatClock(),
		demands:         newJobDemands(),

		heldEvents: map[types.NamespacedName][]pendingEvent{},
	}
}

// missingVolumeRecheck is how often a job waiting for a PersistentVolumeClaim looks again
// without being woken.
const missingVolumeRecheck = time.Minute

// conflictRetryDelay is how long a reconcile whose status write met a newer version waits
// before it looks again: about the time the cache needs to catch up.
const conflictRetryDelay = 100 * time.Millisecond

// pendingEvent is an event emitted once the status write succeeded.
type pendingEvent struct {
	eventType, reason, action, note string
}

// syncState is one reconcile of one job.
type syncState struct {
	job    *sdfleetv1alpha1.ImageGenerationJob
	key    types.NamespacedName
	now    time.Time
	seed   int64
	st     *jobState
	status *sdfleetv1alpha1.ImageGenerationJobStatus
	events []pendingEvent
	// requeueAfter wakes the job up for its deadline or TTL.
	requeueAfter time.Duration
	// deleteJob: the job's ttlSecondsAfterFinished has passed; it is deleted once its status
	// and events are written.
	deleteJob bool
	// newlySucceeded are images that succeeded since the last status.
	createErr error
}

func (s *syncState) event(eventType, reason, action, format string, args ...any) {
	s.events = append(s.events, pendingEvent{eventType, reason, action, fmt.Sprintf(format, args...)})
}

// setCondition sets a condition of the new status, with the job's generation; its transition
// time changes only when its status does.
func (s *syncState) setCondition(condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.status.Conditions, metav1.Condition{Type: condType, Status: status, Reason: reason,
		Message: message, ObservedGeneration: s.job.Generation, LastTransitionTime: metav1.Time{Time: s.now}})
}

func (s *syncState) requeue(after time.Duration) {
	if after <= 0 {
		after = time.Second
	}
	if s.requeueAfter == 0 || after < s.requeueAfter {
		s.requeueAfter = after
	}
}

// Reconcile brings one job's pods and status in line with its spec: fetch, guard, compute,
// act, then one status write, then the events.
func (r *ImageGenerationJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	job := &sdfleetv1alpha1.ImageGenerationJob{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.takeHeldEvents(req.NamespacedName)
			return ctrl.Result{}, r.cleanUpDeletedJob(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, fmt.Errorf("get ImageGenerationJob %s: %w", req.NamespacedName, err)
	}
	if job.DeletionTimestamp != nil {
		// The garbage collector removes the pods through their owner references; once the
		// job is gone, cleanUpDeletedJob removes any that remain.
		return ctrl.Result{}, nil
	}

	s := &syncState{job: job, key: req.NamespacedName, now: r.now(), seed: resolveSeed(job)}
	infos, err := r.readPods(ctx, job)
	if err != nil {
		return ctrl.Result{}, err
	}
	if s.st, err = computeJobState(job, infos); err != nil {
		// Reading such a status as "nothing finished" would generate finished images again.
		// Nothing is written and nothing is retried until the job or its pods change.
		err = fmt.Errorf("status of ImageGenerationJob %s: %w", req.NamespacedName, err)
		r.recorder.Eventf(job, nil, corev1.EventTypeWarning, ReasonInvalidStatus, "Sync",
			"%v; no pod is created until the status is corrected", err)
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	r.learnMemory(job, infos)
	s.status = job.Status.DeepCopy()
	s.status.ObservedGeneration = job.Generation
	s.status.Seed = &s.seed
	if s.status.StartTime == nil {
		s.status.StartTime = &metav1.Time{Time: s.now}
	}

	if err := r.sync(ctx, s); err != nil {
		r.holdEvents(req.NamespacedName, s.events)
		return ctrl.Result{}, err
	}
	r.summarise(s)

	if !equality.Semantic.DeepEqual(job.Status, *s.status) {
		updated := job.DeepCopy()
		updated.Status = *s.status
		if err := r.client.Status().Update(ctx, updated); err != nil {
			r.holdEvents(req.NamespacedName, s.events)
			if apierrors.IsConflict(err) {
				// The cache had not yet seen our previous write. Nothing else would wake the
				// job (its own status changes are filtered out), so look again shortly.
				log.V(1).Info("status changed underneath, reconciling again", "job", req.NamespacedName)
				return ctrl.Result{RequeueAfter: conflictRetryDelay}, nil
			}
			return ctrl.Result{}, fmt.Errorf("update status of ImageGenerationJob %s: %w", req.NamespacedName, err)
		}
	}
	r.afterWrite(job, s)
	if s.deleteJob {
		// The status of a job about to go was still written, so that its last events and
		// watchers see how it ended; its pods go with it.
		err := r.client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: &job.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("delete ImageGenerationJob %s after its ttlSecondsAfterFinished: %w", s.key, err)
		}
		log.V(1).Info("deleted a finished job after its ttlSecondsAfterFinished", "job", s.key)
		return ctrl.Result{}, nil
	}
	if s.createErr != nil {
		return ctrl.Result{}, s.createErr
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter}, nil
}

// sync decides what the job needs and does it, recording the outcome in s.status.
func (r *ImageGenerationJobReconciler) sync(ctx context.Context, s *syncState) error {
	job, st := s.job, s.st
	now := metav1.Time{Time: s.now}
	conds := &s.status.Conditions

	if meta.IsStatusConditionTrue(*conds, sdfleetv1alpha1.JobComplete) || meta.IsStatusConditionTrue(*conds, sdfleetv1alpha1.JobFailed) {
		// Finished: nothing runs any more; keep the record and honour the TTL.
		if err := r.deleteActive(ctx, s, "the job finished"); err != nil {
			return err
		}
		r.handleTTL(s)
		return nil
	}
	if refused, err := r.refuseByPolicy(ctx, s); refused || err != nil {
		return err
	}

	var failReason, failMessage string
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
	switch {
	case st.modelError != "":
		failReason, failMessage = ReasonModelError, "the model cannot be used, so every image would fail: "+st.modelError
	case job.Spec.MaxFailedImages != nil && int32(st.failed.Len()) > *job.Spec.MaxFailedImages:
		failReason = ReasonTooManyFailedImages
		failMessage = fmt.Sprintf("%d images failed, more than maxFailedImages (%d)", st.failed.Len(), *job.Spec.MaxFailedImages)
	case int32(st.completed.Len()+st.failed.Len()) == st.images && st.completed.Len() == 0:
		failReason, failMessage = ReasonAllImagesFailed, fmt.Sprintf("all %d images failed", st.images)
	case !suspended && job.Spec.ActiveDeadlineSeconds != nil:
		deadline := s.status.StartTime.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds) * time.Second)
		if !s.now.Before(deadline) {
			failReason = ReasonDeadlineExceeded
			failMessage = fmt.Sprintf("the job ran longer than activeDeadlineSeconds (%ds) with %d of %d images done",
				*job.Spec.ActiveDeadlineSeconds, st.completed.Len(), st.images)
		} else {
			s.requeue(deadline.Sub(s.now))
		}
	}
	if failReason != "" {
		if err := r.deleteActive(ctx, s, "the job failed"); err != nil {
			return err
		}
		r.fail(s, failReason, failMessage)
		r.handleTTL(s)
		return nil
	}

	if int32(st.completed.Len()+st.failed.Len()) == st.images {
		reason, msg := ReasonCompleted, fmt.Sprintf("all %d images succeeded", st.images)
		if st.failed.Len() > 0 {
			reason = ReasonCompletedWithFailures
			msg = fmt.Sprintf("%d of %d images succeeded, %d failed", st.completed.Len(), st.images, st.failed.Len())
		}
		s.setCondition(sdfleetv1alpha1.JobComplete, metav1.ConditionTrue, reason, msg)
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionFalse, ReasonFinished, msg)
		s.status.CompletionTime = &now
		s.event(corev1.EventTypeNormal, reason, "Complete", "Completed %d/%d images in %s", st.completed.Len(),
			st.images, s.now.Sub(s.status.StartTime.Time).Round(time.Second))
		r.handleTTL(s)
		return nil
	}

	if suspended {
		if err := r.deleteActive(ctx, s, "the job is suspended"); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(*conds, sdfleetv1alpha1.JobSuspended) {
			s.event(corev1.EventTypeNormal, ReasonSuspended, "Suspend", "Suspended with %d of %d images done",
				st.completed.Len(), st.images)
		}
		s.setCondition(sdfleetv1alpha1.JobSuspended, metav1.ConditionTrue, ReasonSuspended,
			"spec.suspend is true: no image pods run")
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionFalse, ReasonSuspended, "spec.suspend is true")
		// As for a batch/v1 Job, time spent suspended does not count against
		// activeDeadlineSeconds: the clock starts again when the job resumes.
		s.status.StartTime = nil
		return nil
	}
	if meta.IsStatusConditionTrue(*conds, sdfleetv1alpha1.JobSuspended) {
		s.setCondition(sdfleetv1alpha1.JobSuspended, metav1.ConditionFalse, ReasonResumed, "spec.suspend is false")
		s.event(corev1.EventTypeNormal, ReasonResumed, "Resume", "Resumed with %d of %d images done",
			st.completed.Len(), st.images)
	}

	if missing, err := r.missingVolume(ctx, job); err != nil {
		return err
	} else if missing != "" {
		if c := meta.FindStatusCondition(*conds, sdfleetv1alpha1.JobProgressing); c == nil || c.Reason != ReasonMissingVolume {
			s.event(corev1.EventTypeWarning, ReasonMissingVolume, "Wait", "%s", missing)
		}
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionFalse, ReasonMissingVolume, missing)
		// The claim's creation wakes the job; looking again now and then covers a wake-up
		// lost to a failed lookup of the jobs naming it.
		s.requeue(missingVolumeRecheck)
		return nil
	}

	nodes, err := r.gpuNodes(ctx)
	if err != nil {
		return err
	}
	if err := r.replaceOnUnhealthyGPUs(ctx, s, nodes); err != nil {
		return err
	}
	created, err := r.placeAndCreate(ctx, s, nodes)
	if err != nil {
		return err
	}

	waiting := 0
	waitReason := ""
	for _, img := range st.byIndex {
		if img.waiting != "" && img.needsPod() {
			waiting++
			waitReason = img.waiting
		}
	}
	switch {
	case waiting > 0 && created == 0 && st.active == 0:
		msg := fmt.Sprintf("%d images wait for a GPU: %s", waiting, waitReason)
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionTrue, ReasonWaitingForGPU, msg)
	case st.running > 0:
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionTrue, ReasonRunning,
			fmt.Sprintf("%d images running, %d starting, %d waiting for a GPU, %d of %d done", st.running,
				st.active-st.running, waiting, st.completed.Len()+st.failed.Len(), st.images))
	default:
		s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionTrue, ReasonCreatingPods,
			fmt.Sprintf("%d image pods starting, %d waiting for a GPU, %d of %d done", st.active, waiting,
				st.completed.Len()+st.failed.Len(), st.images))
	}
	if waiting > 0 {
		// Events alone can miss a GPU freeing up: one seen while this reconcile decided, before
		// the job joined the jobs that GPU changes wake, is lost. A waiting job looks again
		// within one heartbeat of the GPUs; when nothing changed, that writes nothing.
		s.requeue(r.waitRecheck(nodes))
	}
	if waiting > 0 && !hadWaitingImages(job) {
		s.event(corev1.EventTypeNormal, ReasonWaitingForGPU, "Wait", "%d images wait for a GPU: %s", waiting, waitReason)
	}
	return nil
}

// fail marks the job Failed.
func (r *ImageGenerationJobReconciler) fail(s *syncState, reason, message string) {
	now := metav1.Time{Time: s.now}
	s.setCondition(sdfleetv1alpha1.JobFailed, metav1.ConditionTrue, reason, message)
	s.setCondition(sdfleetv1alpha1.JobProgressing, metav1.ConditionFalse, reason, message)
	s.status.CompletionTime = &now
	s.event(corev1.EventTypeWarning, reason, "Fail", "%s", message)
}

// handleTTL wakes a finished job when spec.ttlSecondsAfterFinished passes, and marks it for
// deletion once it has: Reconcile deletes it after the status write, even with a TTL of 0.
func (r *ImageGenerationJobReconciler) handleTTL(s *syncState) {
	ttl := s.job.Spec.TTLSecondsAfterFinished
	if ttl == nil || s.status.CompletionTime == nil {
		return
	}
	expiry := s.status.CompletionTime.Add(time.Duration(*ttl) * time.Second)
	if s.now.Before(expiry) {
		s.requeue(expiry.Sub(s.now))
		return
	}
	s.deleteJob = true
}

// readPods returns the job's pods: those in the cache, and those created but not yet seen.
func (r *ImageGenerationJobReconciler) readPods(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob) ([]podInfo, error) {
	key := client.ObjectKeyFromObject(job)
	var list corev1.PodList
	// The cache's objects are only read here, so they need not be copied.
	if err := r.client.List(ctx, &list, client.InNamespace(job.Namespace),
		client.MatchingLabels{LabelJobUID: string(job.UID)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list pods of ImageGenerationJob %s: %w", key, err)
	}
	infos := make([]podInfo, 0, len(list.Items))
	for i := range list.Items {
		pod := &list.Items[i]
		if !metav1.IsControlledBy(pod, job) {
			continue
		}
		// The ledger is fed by the pod event handler only: events arrive in order, whereas
		// this list may already be older than the last event.
		if info, ok := readPod(pod); ok {
			infos = append(infos, info)
		}
	}
	for _, u := range r.ledger.Unobserved(key) {
		infos = append(infos, unobservedPod(job.Name, u))
	}
	return infos, nil
}

// unobservedPod describes a pod created but not yet in the cache: it counts as pending.
func unobservedPod(job string, u ledger.PodPlacement) podInfo {
	info := podInfo{name: u.Pod.Name, index: u.Index, kind: podPending, node: u.Node, gpuUUID: u.GPUUUID, bytes: u.Bytes,
		device: DeviceCPU}
	if u.GPUUUID != "" {
		info.device = DeviceGPU
		gpuIndex := u.GPUIndex
		info.gpuIndex = &gpuIndex
	}
	if rest, ok := strings.CutPrefix(u.Pod.Name, PodName(job, u.Index, 0)+"-r"); ok {
		if seq, err := strconv.ParseInt(rest, 10, 32); err == nil {
			info.seq = int32(seq)
		}
	}
	return info
}

// deleteActive deletes every active pod of the job (suspend, failure, finish).
func (r *ImageGenerationJobReconciler) deleteActive(ctx context.Context, s *syncState, why string) error {
	var errs []error
	for _, img := range s.st.byIndex {
		if img.current == nil {
			continue
		}
		if err := r.deletePod(ctx, s.job.Namespace, img.current.name); err != nil {
			errs = append(errs, err)
			continue
		}
		img.current.kind = podLost
		img.current.message = "pod deleted: " + why
		img.evaluate(backoffLimit(s.job))
	}
	s.st.refresh()
	return errors.Join(errs...)
}

func (r *ImageGenerationJobReconciler) deletePod(ctx context.Context, namespace, name string) error {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := r.client.Delete(ctx, pod, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil &&
		!apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	r.ledger.Forget(types.NamespacedName{Namespace: namespace, Name: name})
	return nil
}

// cleanUpDeletedJob removes what a deleted job leaves: its pods (the garbage collector does it
// too in a full cluster; doing it here makes deletion prompt and independent of it) and its
// in-memory records.
func (r *ImageGenerationJobReconciler) cleanUpDeletedJob(ctx context.Context, key types.NamespacedName) error {
	r.waiting.remove(key)
	r.demands.set(key, 0)
	r.gauges.set(key, nil)
	defer r.ledger.ForgetJob(key)
	var list corev1.PodList
	if err := r.client.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingLabels{LabelJob: jobLabelValue(key.Name)}); err != nil {
		return fmt.Errorf("list pods of deleted ImageGenerationJob %s: %w", key, err)
	}
	var errs []error
	for i := range list.Items {
		pod := &list.Items[i]
		owner := metav1.GetControllerOf(pod)
		if owner == nil || owner.Kind != "ImageGenerationJob" || owner.Name != key.Name || pod.DeletionTimestamp != nil {
			continue
		}
		err := r.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID},
			client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete pod %s of deleted ImageGenerationJob %s: %w", pod.Name, key, err))
		}
	}
	return errors.Join(errs...)
}

// missingVolume returns a message naming the first PersistentVolumeClaim of the spec that does
// not exist, or "".
func (r *ImageGenerationJobReconciler) missingVolume(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob) (string, error) {
	for _, v := range []struct {
		field string
		loc   sdfleetv1alpha1.StorageLocation
	}{{"spec.model", job.Spec.Model}, {"spec.output", job.Spec.Output}} {
		if v.loc.PersistentVolumeClaim == nil {
			continue
		}
		name := v.loc.PersistentVolumeClaim.ClaimName
		err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, &corev1.PersistentVolumeClaim{})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Sprintf("PersistentVolumeClaim %q named by %s.persistentVolumeClaim.claimName does not exist in "+
				"namespace %q; the job starts when it is created", name, v.field, job.Namespace), nil
		case err != nil:
			return "", fmt.Errorf("get PersistentVolumeClaim %s/%s named by %s: %w", job.Namespace, name, v.field, err)
		}
	}
	return "", nil
}

// summarise fills the counts, ranges, per-image detail and phase of s.status.
func (r *ImageGenerationJobReconciler) summarise(s *syncState) {
	st := s.st
	st.refresh()
	s.status.Succeeded = int32(st.completed.Len())
	s.status.Failed = int32(st.failed.Len())
	s.status.Running = st.running
	s.status.Pending = max(0, st.images-s.status.Succeeded-s.status.Failed-s.status.Running)
	s.status.CompletedIndexes = st.completed.String()
	s.status.FailedIndexes = st.failed.String()
	s.status.Images = imageDetails(s.job, st, s.seed)
	mem := r.memoryEstimate(s.job)
	s.status.MemoryPerImage = &mem
	s.status.Phase = phaseOf(s.status)
}

// afterWrite emits the events and updates the metrics once the status is stored.
func (r *ImageGenerationJobReconciler) afterWrite(job *sdfleetv1alpha1.ImageGenerationJob, s *syncState) {
	for _, e := range append(r.takeHeldEvents(s.key), s.events...) {
		r.recorder.Eventf(job, nil, e.eventType, e.reason, e.action, "%s", e.note)
	}
	counts := jobCounts{
		sdfleetv1alpha1.ImageRunning:   s.status.Running,
		sdfleetv1alpha1.ImageSucceeded: s.status.Succeeded,
		sdfleetv1alpha1.ImageFailed:    s.status.Failed,
	}
	waiting := int32(0)
	for _, img := range s.st.byIndex {
		if img.waiting != "" && img.needsPod() {
			waiting++
		}
	}
	counts[sdfleetv1alpha1.ImageWaiting] = waiting
	counts[sdfleetv1alpha1.ImagePending] = max(0, s.status.Pending-waiting)
	r.gauges.set(s.key, counts)
	if waiting > 0 {
		r.waiting.add(s.key)
	} else {
		r.waiting.remove(s.key)
	}
	r.demands.set(s.key, int(s.st.active+waiting))
	// Durations of the images that succeeded since the last stored status.
	if job.Status.CompletedIndexes == s.status.CompletedIndexes {
		return
	}
	// computeJobState parsed it already.
	before, _ := indexset.Parse(job.Status.CompletedIndexes, job.Spec.Images)
	for _, img := range s.st.byIndex {
		if img.succeeded == nil || img.succeeded.result.DurationMilliseconds <= 0 || before.Has(img.index) {
			continue
		}
		uuid := img.succeeded.gpuUUID
		if uuid == "" {
			uuid = DeviceCPU
		}
		imageDuration.WithLabelValues(uuid).Observe(float64(img.succeeded.result.DurationMilliseconds) / 1000)
	}
}

func hadWaitingImages(job *sdfleetv1alpha1.ImageGenerationJob) bool {
	for _, d := range job.Status.Images {
		if d.Phase == sdfleetv1alpha1.ImageWaiting {
			return true
		}
	}
	return false
}

// resolveSeed is spec.seed, else the seed already recorded, else one derived from the job's
// UID: stable across restarts even when the status write that records it was lost.
func resolveSeed(job *sdfleetv1alpha1.ImageGenerationJob) int64 {
	if job.Spec.Seed != nil {
		return *job.Spec.Seed
	}
	if job.Status.Seed != nil {
		return *job.Status.Seed
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(job.UID))
	return int64(h.Sum32())
}

// jobSet is a set of jobs, safe for concurrent use.
type jobSet struct {
	mu   sync.Mutex
	jobs map[types.NamespacedName]struct{}
}

func newJobSet() *jobSet { return &jobSet{jobs: map[types.NamespacedName]struct{}{}} }

func (s *jobSet) add(k types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[k] = struct{}{}
}

func (s *jobSet) remove(k types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, k)
}

func (s *jobSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

func (s *jobSet) list() []types.NamespacedName {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]types.NamespacedName, 0, len(s.jobs))
	for k := range s.jobs {
		out = append(out, k)
	}
	return out
}
