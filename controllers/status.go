package controllers

import (
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// Reasons of the job's conditions.
const (
	ReasonCreatingPods          = "CreatingPods"
	ReasonRunning               = "Running"
	ReasonWaitingForGPU         = "WaitingForGPU"
	ReasonMissingVolume         = "MissingVolume"
	ReasonSuspended             = "Suspended"
	ReasonResumed               = "Resumed"
	ReasonCompleted             = "Completed"
	ReasonCompletedWithFailures = "CompletedWithFailures"
	ReasonModelError            = "ModelError"
	ReasonTooManyFailedImages   = "TooManyFailedImages"
	ReasonAllImagesFailed       = "AllImagesFailed"
	ReasonDeadlineExceeded      = "DeadlineExceeded"
	ReasonFinished              = "Finished"
	// ReasonInvalidStatus: the status cannot be read back (an index range that does not
	// parse); the job stops until it is corrected, rather than run finished images again.
	ReasonInvalidStatus = "InvalidStatus"
	// ReasonPodNameTaken: a pod the job does not control has the name of one of its pods.
	ReasonPodNameTaken = "PodNameTaken"
)

// imageDetails builds status.images: every active or waiting image, then the failed ones,
// then the most recently finished ones, at most MaxImageDetails in all, sorted by index.
// Finished images whose pods are gone keep the entry of the previous status.
func imageDetails(job *sdfleetv1alpha1.ImageGenerationJob, st *jobState, jobSeed int64) []sdfleetv1alpha1.ImageStatus {
	prev := make(map[int32]*sdfleetv1alpha1.ImageStatus, len(job.Status.Images))
	for i := range job.Status.Images {
		prev[job.Status.Images[i].Index] = &job.Status.Images[i]
	}
	var active, failed, succeeded []sdfleetv1alpha1.ImageStatus
	seen := map[int32]bool{}
	for index, img := range st.byIndex {
		if len(img.pods) == 0 && img.waiting == "" {
			continue
		}
		d := imageDetail(job, img, prev[index], jobSeed)
		seen[index] = true
		switch d.Phase {
		case sdfleetv1alpha1.ImageFailed:
			failed = append(failed, d)
		case sdfleetv1alpha1.ImageSucceeded:
			succeeded = append(succeeded, d)
		default:
			active = append(active, d)
		}
	}
	for index, p := range prev {
		if seen[index] || !st.finished(index) {
			continue
		}
		d := *p.DeepCopy()
		if st.failed.Has(index) {
			failed = append(failed, d)
		} else {
			succeeded = append(succeeded, d)
		}
	}
	byIndex := func(list []sdfleetv1alpha1.ImageStatus) {
		sort.Slice(list, func(a, b int) bool { return list[a].Index < list[b].Index })
	}
	byIndex(active)
	byIndex(failed)
	sort.Slice(succeeded, func(a, b int) bool {
		ta, tb := finishTime(succeeded[a]), finishTime(succeeded[b])
		if !ta.Equal(&tb) {
			return tb.Before(&ta)
		}
		return succeeded[a].Index < succeeded[b].Index
	})
	out := make([]sdfleetv1alpha1.ImageStatus, 0, min(sdfleetv1alpha1.MaxImageDetails, len(active)+len(failed)+len(succeeded)))
	for _, list := range [][]sdfleetv1alpha1.ImageStatus{active, failed, succeeded} {
		for _, d := range list {
			if len(out) == sdfleetv1alpha1.MaxImageDetails {
				break
			}
			out = append(out, d)
		}
	}
	byIndex(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func finishTime(d sdfleetv1alpha1.ImageStatus) metav1.Time {
	if d.FinishTime == nil {
		return metav1.Time{}
	}
	return *d.FinishTime
}

// imageDetail describes one image from its pods.
func imageDetail(job *sdfleetv1alpha1.ImageGenerationJob, img *imageState, prev *sdfleetv1alpha1.ImageStatus,
	jobSeed int64) sdfleetv1alpha1.ImageStatus {
	d := sdfleetv1alpha1.ImageStatus{Index: img.index, Seed: imageSeed(jobSeed, img.index), Attempts: img.failures}
	if len(img.failedGPUs) > 0 {
		d.FailedGPUs = append([]string(nil), img.failedGPUs...)
		if len(d.FailedGPUs) > 11 {
			d.FailedGPUs = d.FailedGPUs[len(d.FailedGPUs)-11:]
		}
	}
	// The pod that best describes the image: the one that wrote it, the active one, the last
	// failed one.
	var p *podInfo
	switch {
	case img.succeeded != nil:
		p = img.succeeded
		d.Phase = sdfleetv1alpha1.ImageSucceeded
		d.Attempts++
	case img.doneFailed:
		p = img.last
		d.Phase = sdfleetv1alpha1.ImageFailed
		d.Message = img.message
	case img.current != nil:
		p = img.current
		d.Attempts++
		d.Phase = sdfleetv1alpha1.ImagePending
		if p.kind == podRunning {
			d.Phase = sdfleetv1alpha1.ImageRunning
		}
		if img.last != nil {
			d.Message = "retry after: " + img.last.message
		}
	default:
		d.Phase = sdfleetv1alpha1.ImageWaiting
		d.Message = img.waiting
		if len(img.pods) > 0 {
			p = &img.pods[len(img.pods)-1]
		}
	}
	if p != nil {
		d.PodName = p.name
		d.Node = p.node
		d.Device = p.device
		d.GPUUUID = p.gpuUUID
		d.GPUIndex = p.gpuIndex
		d.GPUMemoryLoadPercent = p.loadPercent
		d.StartTime = p.startTime
	}
	if d.Phase == sdfleetv1alpha1.ImageSucceeded || d.Phase == sdfleetv1alpha1.ImageFailed {
		d.FinishTime = p.finishTime
		if d.FinishTime == nil && prev != nil {
			d.FinishTime = prev.FinishTime
		}
	}
	if d.Phase == sdfleetv1alpha1.ImageSucceeded {
		d.OutputPath = outputPathForStatus(job, img.index)
		// A succeeded pod's result passed Result.Validate.
		d.SHA256 = p.result.SHA256
		if p.result.DurationMilliseconds > 0 {
			ms := p.result.DurationMilliseconds
			d.DurationMilliseconds = &ms
		}
	}
	if d.StartTime == nil && prev != nil && prev.PodName == d.PodName {
		d.StartTime = prev.StartTime
	}
	// The prefixes above may take a message past what the API stores.
	d.Message = podcontract.Truncate(d.Message, podcontract.MaxMessageLength)
	return d
}

// phaseOf summarises the conditions.
func phaseOf(status *sdfleetv1alpha1.ImageGenerationJobStatus) sdfleetv1alpha1.JobPhase {
	switch {
	case meta.IsStatusConditionTrue(status.Conditions, sdfleetv1alpha1.JobFailed):
		return sdfleetv1alpha1.JobPhaseFailed
	case meta.IsStatusConditionTrue(status.Conditions, sdfleetv1alpha1.JobComplete):
		return sdfleetv1alpha1.JobPhaseComplete
	case meta.IsStatusConditionTrue(status.Conditions, sdfleetv1alpha1.JobSuspended):
		return sdfleetv1alpha1.JobPhaseSuspended
	case status.Running > 0:
		return sdfleetv1alpha1.JobPhaseRunning
	default:
		return sdfleetv1alpha1.JobPhasePending
	}
}
