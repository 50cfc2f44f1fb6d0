package placement

import (
	"time"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// GPU is one candidate GPU in a snapshot, as the node agent last published it.
type GPU struct {
	// Node is the Kubernetes node the GPU is on.
	Node string
	// Index is the GPU's index on its node; its extended resource is sdfleet.io/gpu-<Index>.
	Index int32
	// UUID identifies the GPU across the cluster.
	UUID string
	// MemoryUsedBytes and MemoryTotalBytes are the live memory figures.
	MemoryUsedBytes  int64
	MemoryTotalBytes int64
	// UtilizationPercent and TemperatureCelsius are the live compute load and temperature.
	UtilizationPercent int32
	TemperatureCelsius int32
	// Healthy is false after an XID, ECC or NVML query failure.
	Healthy bool
	// Heartbeat is when the GPU's figures were last published.
	Heartbeat time.Time
	// StaleAfter is how old Heartbeat may be before the GPU counts as silent (fully loaded,
	// never chosen). Zero means three of Config.SampleInterval. Agents that publish only on
	// change plus a periodic heartbeat set it from that heartbeat's interval.
	StaleAfter time.Duration
	// Slots is how many images may run on the GPU at once (0 or less: no slot limit);
	// SlotsInUse how many hold one now. SlotsInUse counts every image the caller has placed on
	// the GPU, reserved or running: reservations do not add to it.
	Slots      int32
	SlotsInUse int32
	// ImagesPerSecond is the measured speed of this GPU for the request's model; 0 = unknown.
	ImagesPerSecond float64
	// QueuedWork is, when the caller knows it, the work already on the GPU counted in images,
	// each image by the fraction it has left (two images half done = 1). 0 means unknown, and
	// every image of SlotsInUse then counts whole. With ImagesPerSecond it gives the expected
	// finish of one more image: (QueuedWork + 1) / ImagesPerSecond.
	QueuedWork float64
}

// Reservation is an image already assigned to a GPU whose model memory has not yet shown up in
// the live figures. The caller drops it once the GPU's live figures include the image's memory;
// until then its Bytes count on top of the GPU's live used memory (see the package doc).
type Reservation struct {
	// GPU is the UUID of the GPU the image was assigned to.
	GPU string
	// Bytes is the memory the image is expected to use.
	Bytes int64
}

// GPURef names a GPU by node and UUID or index, as spec.placement.gpus does.
type GPURef struct {
	Node  string
	UUID  string
	Index *int32
}

// Request asks for a GPU for each of Images images.
type Request struct {
	// Images is how many images to place.
	Images int
	// MemoryPerImage is the expected GPU memory footprint of one image.
	MemoryPerImage int64
	// Policy is how to choose; empty means LeastLoaded.
	Policy sdfleetv1alpha1.PlacementPolicy
	// Pinned lists the only GPUs a Pinned request may use.
	Pinned []GPURef
	// Avoid lists GPU UUIDs this request must not use while another GPU can take it (the GPUs
	// where the image already failed).
	Avoid []string
	// AllowCPUFallback places images on the CPU when the cluster has no usable GPU at all.
	AllowCPUFallback bool
	// Backlog is how many more images of the same size wait behind this request, to be asked
	// for later (the caller's queue); 0 means none. Only LeastLoaded with measured speeds uses
	// it: a slow free GPU is worth starting an image on now when the faster busy GPUs cannot
	// take all the images still to place before it would finish.
	Backlog int
}

// Snapshot is the state placement decides on: every candidate GPU and the in-flight
// reservations.
type Snapshot struct {
	GPUs         []GPU
	Reservations []Reservation
	// Now is the decision time, compared with each GPU's heartbeat.
	Now time.Time
}

// Outcome is the kind of a decision.
type Outcome string

const (
	// OutcomeGPU: the image goes to Decision.GPU.
	OutcomeGPU Outcome = "GPU"
	// OutcomeWait: no GPU has room now; Decision.Reason says why.
	OutcomeWait Outcome = "Wait"
	// OutcomeCPU: the cluster has no usable GPU and CPU fallback is allowed.
	OutcomeCPU Outcome = "CPU"
)

// Candidate is a GPU considered for a decision and its effective load at that moment.
type Candidate struct {
	UUID string
	// Load is the effective load in [0, 1]; 1 for unhealthy or silent GPUs.
	Load float64
	// Unusable says why the GPU could not be chosen at all ("unhealthy", "silent", "no memory
	// figures"); empty for a usable GPU.
	Unusable string
	// Fits says whether the image had room on the GPU: a free slot and the memory.
	Fits bool
	// Avoided says the image failed on the GPU before.
	Avoided bool
	// ExpectedFinish is, when the decision used measured speeds, how long the GPU would have
	// taken to finish the image after the work already on it; 0 otherwise.
	ExpectedFinish time.Duration
}

// Decision is where one image goes and why.
type Decision struct {
	Outcome Outcome
	// GPU is the chosen GPU (OutcomeGPU only).
	GPU GPU
	// Load is the chosen GPU's effective load, in [0, 1], when it was chosen.
	Load float64
	// Policy is the policy that chose it.
	Policy sdfleetv1alpha1.PlacementPolicy
	// Alternatives are the other GPUs considered, with their loads.
	Alternatives []Candidate
	// Reason explains a Wait or CPU outcome.
	Reason string
	// AwaitsGPU is, for a Wait because busy GPUs are expected to finish the images still to
	// place sooner than any GPU with room, the UUID of the first of them; empty for every other
	// decision.
	AwaitsGPU string
	// ExpectedFinish is, when the decision used measured speeds, how long the chosen GPU is
	// expected to take to finish this image counting the images already on it; 0 otherwise.
	ExpectedFinish time.Duration
}
