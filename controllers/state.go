package controllers

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/indexset"
	"github.com/sdfleet/sdfleet/controllers/ledger"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// podKind is what one pod means for its image.
type podKind int

const (
	// podPending: created, not running yet (or not yet seen in the cache).
	podPending podKind = iota
	// podRunning: its container runs.
	podRunning
	// podSucceeded: the image is written.
	podSucceeded
	// podFailed: a failed attempt, counted against backoffLimitPerImage.
	podFailed
	// podLost: evicted, deleted from outside or never started; it does not count as an attempt.
	podLost
)

// podInfo is one pod of an image, as the controller reads it.
type podInfo struct {
	name  string
	index int32
	seq   int32
	kind  podKind
	// observed is false for a pod created but not yet seen in the cache.
	observed bool
	// gpu placement, from the pod's annotations.
	device      string
	node        string
	gpuIndex    *int32
	gpuUUID     string
	loadPercent *int32
	bytes       int64
	// failure is the class of a failed attempt.
	failure  podcontract.Failure
	exitCode int32
	result   podcontract.Result
	// message explains a failure or a loss.
	message    string
	startTime  *metav1.Time
	finishTime *metav1.Time
}

// readPod turns a cached pod into a podInfo. It returns false for a pod that is not an image
// pod of this controller (no valid index label).
func readPod(pod *corev1.Pod) (podInfo, bool) {
	index, err := strconv.ParseInt(pod.Labels[LabelImageIndex], 10, 32)
	if err != nil || index < 0 {
		return podInfo{}, false
	}
	info := podInfo{name: pod.Name, index: int32(index), observed: true}
	if seq, err := strconv.ParseInt(pod.Annotations[AnnotationRetry], 10, 32); err == nil && seq >= 0 {
		info.seq = int32(seq)
	}
	readPlacementAnnotations(pod.Annotations, &info)

	terminated := containerTermination(pod)
	if terminated != nil {
		info.finishTime = timeOrNil(terminated.FinishedAt)
		info.startTime = timeOrNil(terminated.StartedAt)
	}
	// resultErr says why the pod left no valid result: only a pod with one has written its image.
	resultErr := errors.New("the container left no termination message")
	if terminated != nil {
		var isResult bool
		info.result, isResult = podcontract.ParseResult(terminated.Message)
		switch {
		case !isResult:
			resultErr = errors.New("its termination message is not a JSON result")
		default:
			resultErr = info.result.Validate()
		}
	}
	switch {
	case pod.Status.Phase == corev1.PodSucceeded && resultErr == nil:
		info.kind = podSucceeded
	case disrupted(pod, terminated):
		// Stopped by a deletion (ours on suspend or failure, a user's, a drain) or by a
		// disruption (preemption, eviction by a taint): its exit says nothing about the image
		// or the GPU, so it is not a failed attempt.
		info.kind = podLost
		info.message = "pod " + pod.Name + " was deleted or disrupted before it finished"
		info.result = podcontract.Result{}
	case pod.Status.Phase == corev1.PodSucceeded:
		// Exit 0 without a valid result: the image may not be written. A failed attempt,
		// retried.
		info.kind = podFailed
		info.failure = podcontract.FailureNoResult
		info.message = podcontract.Truncate("exit code 0 without a valid result: "+resultErr.Error(),
			podcontract.MaxMessageLength)
	case pod.Status.Phase == corev1.PodFailed:
		switch {
		case pod.Status.Reason == "Evicted":
			info.kind = podLost
			info.message = lossMessage(pod, "evicted")
		case terminated == nil:
			// The container never ran (admission refused it, the node went away): placing
			// the image again is not a retry.
			info.kind = podLost
			info.message = lossMessage(pod, "failed before its container ran")
		default:
			info.kind = podFailed
			info.exitCode = terminated.ExitCode
			info.failure = podcontract.Classify(terminated.ExitCode)
			info.message = failureMessage(info.failure, terminated.ExitCode, info.result.Error)
		}
	case pod.Status.Phase == corev1.PodRunning:
		info.kind = podRunning
		info.startTime = runningSince(pod)
	default:
		info.kind = podPending
	}
	return info, true
}

// disrupted reports whether a pod that has not succeeded was stopped from outside: it is being
// deleted and its container had not ended before the deletion was asked for, or it carries the
// DisruptionTarget condition.
func disrupted(pod *corev1.Pod, terminated *corev1.ContainerStateTerminated) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	if pod.DeletionTimestamp == nil {
		return false
	}
	if terminated == nil || terminated.FinishedAt.IsZero() {
		return true
	}
	// The deletion timestamp is when the grace period ends; the deletion was asked for that
	// long before it. A container that ended before then failed on its own.
	asked := pod.DeletionTimestamp.Time
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		asked = asked.Add(-time.Duration(*g) * time.Second)
	}
	return !terminated.FinishedAt.Time.Before(asked)
}

func readPlacementAnnotations(a map[string]string, info *podInfo) {
	info.device = a[AnnotationDevice]
	info.node = a[AnnotationNode]
	info.gpuUUID = a[AnnotationGPUUUID]
	if v, err := strconv.ParseInt(a[AnnotationGPUIndex], 10, 32); err == nil {
		i := int32(v)
		info.gpuIndex = &i
	}
	if v, err := strconv.ParseInt(a[AnnotationGPULoad], 10, 32); err == nil && v >= 0 && v <= 100 {
		l := int32(v)
		info.loadPercent = &l
	}
	if v, err := strconv.ParseInt(a[AnnotationReservedBytes], 10, 64); err == nil && v >= 0 {
		info.bytes = v
	}
}

// ledgerView is what the ledger records of a pod.
func ledgerView(job types.NamespacedName, pod *corev1.Pod) (ledger.Placement, ledger.State, time.Time) {
	var info podInfo
	readPlacementAnnotations(pod.Annotations, &info)
	index, _ := strconv.ParseInt(pod.Labels[LabelImageIndex], 10, 32)
	p := ledger.Placement{Job: job, Index: int32(index), Node: info.node, GPUUUID: info.gpuUUID, Bytes: info.bytes}
	if info.gpuIndex != nil {
		p.GPUIndex = *info.gpuIndex
	}
	switch {
	case pod.DeletionTimestamp != nil, pod.Status.Phase == corev1.PodSucceeded, pod.Status.Phase == corev1.PodFailed:
		return p, ledger.Finished, time.Time{}
	case pod.Status.Phase == corev1.PodRunning:
		var since time.Time
		if t := runningSince(pod); t != nil {
			since = t.Time
		}
		return p, ledger.Running, since
	default:
		return p, ledger.Pending, time.Time{}
	}
}

func containerTermination(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if cs.Name != podcontract.ContainerName {
			continue
		}
		if cs.State.Terminated != nil {
			return cs.State.Terminated
		}
		return cs.LastTerminationState.Terminated
	}
	return nil
}

func runningSince(pod *corev1.Pod) *metav1.Time {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == podcontract.ContainerName && cs.State.Running != nil && !cs.State.Running.StartedAt.IsZero() {
			t := cs.State.Running.StartedAt
			return &t
		}
	}
	if pod.Status.StartTime != nil {
		t := *pod.Status.StartTime
		return &t
	}
	return nil
}

func timeOrNil(t metav1.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func lossMessage(pod *corev1.Pod, what string) string {
	msg := "pod " + pod.Name + " " + what
	if detail := strings.TrimSpace(pod.Status.Reason + " " + pod.Status.Message); detail != "" {
		msg += ": " + detail
	}
	return podcontract.Truncate(msg, podcontract.MaxMessageLength)
}

func failureMessage(f podcontract.Failure, code int32, detail string) string {
	var what string
	switch f {
	case podcontract.FailureInvalidInput:
		what = "invalid input"
	case podcontract.FailureModel:
		what = "model error"
	case podcontract.FailureOutOfMemory:
		what = "out of GPU memory"
	case podcontract.FailureDevice:
		what = "device error"
	default:
		what = "failed"
	}
	msg := what + " (exit code " + strconv.FormatInt(int64(code), 10) + ")"
	if detail != "" {
		msg += ": " + detail
	}
	return podcontract.Truncate(msg, podcontract.MaxMessageLength)
}

// imageState is everything known about one image.
type imageState struct {
	index int32
	// pods of the image, by sequence number.
	pods []podInfo
	// current is the image's active pod, if any.
	current *podInfo
	// succeeded is the pod that wrote the image, if any.
	succeeded *podInfo
	// failures counts failed attempts; failedGPUs are the GPUs they ran on.
	failures   int32
	failedGPUs []string
	// last is the most recent failed attempt.
	last *podInfo
	// nextSeq is the sequence number of the image's next pod.
	nextSeq int32
	// done: the image succeeded or failed for good (doneFailed).
	done       bool
	doneFailed bool
	message    string
	// waiting is set when the image needs a pod and placement said to wait.
	waiting string
}

// evaluate derives the image's state from its pods. backoffLimit is spec.backoffLimitPerImage.
func (s *imageState) evaluate(backoffLimit int32) {
	sort.Slice(s.pods, func(a, b int) bool { return s.pods[a].seq < s.pods[b].seq })
	s.current, s.succeeded, s.last = nil, nil, nil
	s.failures, s.failedGPUs, s.nextSeq = 0, nil, 0
	s.done, s.doneFailed, s.message = false, false, ""
	fatal := false
	for i := range s.pods {
		p := &s.pods[i]
		if p.seq+1 > s.nextSeq {
			s.nextSeq = p.seq + 1
		}
		switch p.kind {
		case podSucceeded:
			s.succeeded = p
		case podFailed:
			s.failures++
			s.last = p
			if p.gpuUUID != "" && !containsString(s.failedGPUs, p.gpuUUID) {
				s.failedGPUs = append(s.failedGPUs, p.gpuUUID)
			}
			if !p.failure.Retriable() {
				fatal = true
			}
		case podPending, podRunning:
			s.current = p
		}
	}
	switch {
	case s.succeeded != nil:
		s.done = true
		s.current = nil
	case fatal || s.failures > backoffLimit:
		s.done, s.doneFailed = true, true
		s.message = s.last.message
		if s.failures > backoffLimit && s.last.failure.Retriable() {
			s.message = "gave up after " + strconv.FormatInt(int64(s.failures), 10) + " failed attempts; last: " + s.last.message
		}
	}
}

// needsPod reports whether the image should get a new pod now.
func (s *imageState) needsPod() bool { return !s.done && s.current == nil }

// jobState is everything known about a job's images.
type jobState struct {
	images     int32
	byIndex    map[int32]*imageState
	completed  indexset.Set
	failed     indexset.Set
	running    int32
	active     int32
	modelError string
}

// computeJobState reads a job's pods (from the cache and the ledger) and its last status.
// Images recorded as finished in the status stay finished even if their pods are gone, so an
// index range of the status that does not parse is an error: read as empty, it would run
// finished images again.
func computeJobState(job *sdfleetv1alpha1.ImageGenerationJob, pods []podInfo) (*jobState, error) {
	st := &jobState{images: job.Spec.Images, byIndex: map[int32]*imageState{}}
	var err error
	if st.completed, err = indexset.Parse(job.Status.CompletedIndexes, job.Spec.Images); err != nil {
		return nil, fmt.Errorf("status.completedIndexes %q: %w", job.Status.CompletedIndexes, err)
	}
	if st.failed, err = indexset.Parse(job.Status.FailedIndexes, job.Spec.Images); err != nil {
		return nil, fmt.Errorf("status.failedIndexes %q: %w", job.Status.FailedIndexes, err)
	}
	for _, p := range pods {
		if p.index >= job.Spec.Images {
			continue
		}
		st.image(p.index).pods = append(st.image(p.index).pods, p)
	}
	backoff := backoffLimit(job)
	for _, img := range st.byIndex {
		img.evaluate(backoff)
	}
	st.refresh()
	return st, nil
}

func (st *jobState) image(index int32) *imageState {
	img := st.byIndex[index]
	if img == nil {
		img = &imageState{index: index}
		st.byIndex[index] = img
	}
	return img
}

// refresh recomputes the job-level figures after images changed.
func (st *jobState) refresh() {
	st.running, st.active, st.modelError = 0, 0, ""
	for _, img := range st.byIndex {
		switch {
		case img.done && !img.doneFailed:
			st.completed.Add(img.index)
		case img.done:
			if !st.completed.Has(img.index) {
				st.failed.Add(img.index)
			}
		case img.current != nil:
			st.active++
			if img.current.kind == podRunning {
				st.running++
			}
		}
		if img.last != nil && img.last.failure == podcontract.FailureModel && st.modelError == "" {
			st.modelError = img.last.message
		}
	}
}

// finished reports whether the image will not run again.
func (st *jobState) finished(index int32) bool {
	return st.completed.Has(index) || st.failed.Has(index)
}

// toPlace lists the images that need a pod, in index order, at most limit of them.
func (st *jobState) toPlace(limit int) []int32 {
	var out []int32
	for i := int32(0); i < st.images && len(out) < limit; i++ {
		if st.finished(i) {
			continue
		}
		if img := st.byIndex[i]; img != nil && !img.needsPod() {
			continue
		}
		out = append(out, i)
	}
	return out
}

func backoffLimit(job *sdfleetv1alpha1.ImageGenerationJob) int32 {
	if job.Spec.BackoffLimitPerImage != nil {
		return *job.Spec.BackoffLimitPerImage
	}
	return 2
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
