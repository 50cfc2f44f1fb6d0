package controllers

import (
	"fmt"
	"strconv"
	"strings"
)

// Labels and annotations the controller puts on image pods. The placement annotations are
// what the ledger is rebuilt from after a restart.
const (
	// LabelJob is the job's name (cut to a valid label value when longer).
	LabelJob = "sdfleet.io/job"
	// LabelJobUID is the job's UID; pods are listed by it.
	LabelJobUID = "sdfleet.io/job-uid"
	// LabelImageIndex is the image index.
	LabelImageIndex = "sdfleet.io/image-index"

	// AnnotationNode is the node the pod was placed on.
	AnnotationNode = "sdfleet.io/node"
	// AnnotationGPUUUID is the UUID of the chosen GPU; absent for a CPU pod.
	AnnotationGPUUUID = "sdfleet.io/gpu-uuid"
	// AnnotationGPUIndex is the chosen GPU's index on its node.
	AnnotationGPUIndex = "sdfleet.io/gpu-index"
	// AnnotationGPULoad is the GPU's effective memory load, in percent, when it was chosen.
	AnnotationGPULoad = "sdfleet.io/gpu-load-percent"
	// AnnotationPolicy is the placement policy that chose the GPU.
	AnnotationPolicy = "sdfleet.io/placement-policy"
	// AnnotationReservedBytes is the GPU memory reserved for the image.
	AnnotationReservedBytes = "sdfleet.io/reserved-bytes"
	// AnnotationDevice is "gpu" or "cpu".
	AnnotationDevice = "sdfleet.io/device"
	// AnnotationRetry is the pod's sequence number for its image: 0 for the first pod.
	AnnotationRetry = "sdfleet.io/retry"
	// AnnotationWork is the image's work in megapixel-steps (width x height / 10^6 x steps),
	// which the controller's speed learning and expected finishes count in.
	AnnotationWork = "sdfleet.io/megapixel-steps"
)

// Devices an image runs on, as status.images[].device and AnnotationDevice say.
const (
	DeviceGPU = "gpu"
	DeviceCPU = "cpu"
)

// maxPodNameSuffix is the longest suffix added to a job's name: "-9999-r99".
const maxPodNameSuffix = len("-9999-r99")

// maxPodNameLength is the longest valid pod name (a DNS subdomain).
const maxPodNameLength = 253

// PodName is the deterministic name of the seq-th pod of image index of job: <job>-<index> for
// the first, <job>-<index>-r<seq> for the next ones. Deterministic names make a repeated
// creation fail with AlreadyExists instead of running an image twice.
func PodName(job string, index int32, seq int32) string {
	if seq == 0 {
		return job + "-" + strconv.FormatInt(int64(index), 10)
	}
	return fmt.Sprintf("%s-%d-r%d", job, index, seq)
}

// jobLabelValue is the job's name as a label value: at most 63 characters, ending with an
// alphanumeric character.
func jobLabelValue(name string) string {
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}
