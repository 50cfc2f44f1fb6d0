package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Limits of the ImageGenerationJob API. They bound both the work one object can ask for and the
// size of its status, which must stay far below etcd's 1.5 MiB object limit.
const (
	// MaxImages is the largest number of images one job may ask for.
	MaxImages = 10000
	// MaxImageDetails is how many per-image entries status.images keeps: every active image,
	// then failed images, then the most recently finished ones. Counts and compressed index
	// ranges describe the rest.
	MaxImageDetails = 256
	// MaxPinnedGPUs is the longest list of GPUs a Pinned job may name.
	MaxPinnedGPUs = 256
	// MaxPromptLength bounds the prompt and the negative prompt (in bytes).
	MaxPromptLength = 4096
	// MaxPathLength bounds every path in the spec.
	MaxPathLength = 1024
)

// Sampler is the denoising schedule used to turn noise into an image.
// +kubebuilder:validation:Enum=ddim;euler-ancestral;dpmpp-2m-karras
type Sampler string

const (
	// SamplerDDIM is deterministic DDIM (eta = 0) with "leading" timestep spacing.
	SamplerDDIM Sampler = "ddim"
	// SamplerEulerAncestral is the Euler ancestral sampler.
	SamplerEulerAncestral Sampler = "euler-ancestral"
	// SamplerDPMPP2MKarras is DPM-Solver++(2M) with Karras sigmas.
	SamplerDPMPP2MKarras Sampler = "dpmpp-2m-karras"
)

// PlacementPolicy is how the controller chooses a GPU for each image.
// +kubebuilder:validation:Enum=LeastLoaded;RoundRobin;Pack;Pinned
type PlacementPolicy string

const (
	// PlacementLeastLoaded puts each image on the GPU with the lowest effective memory load,
	// re-evaluated after every image; with measured speeds it prefers the earliest finish.
	PlacementLeastLoaded PlacementPolicy = "LeastLoaded"
	// PlacementRoundRobin sorts the GPUs by load once and deals image i to GPU i mod n.
	PlacementRoundRobin PlacementPolicy = "RoundRobin"
	// PlacementPack fills the most loaded GPU that still fits, keeping whole GPUs free.
	PlacementPack PlacementPolicy = "Pack"
	// PlacementPinned only uses the GPUs listed in spec.placement.gpus.
	PlacementPinned PlacementPolicy = "Pinned"
)

// StorageLocation is a place in a volume: a path inside a PersistentVolumeClaim, or a path on
// the node for single-node setups. Exactly one of its members is set.
// +kubebuilder:validation:XValidation:rule="has(self.persistentVolumeClaim) != has(self.hostPath)",message="exactly one of persistentVolumeClaim or hostPath must be set"
type StorageLocation struct {
	// persistentVolumeClaim is a path inside a PersistentVolumeClaim of the job's namespace.
	// +optional
	PersistentVolumeClaim *PVCLocation `json:"persistentVolumeClaim,omitempty"`

	// hostPath is a path on the node, for single-node or demo clusters.
	// +optional
	HostPath *HostPathLocation `json:"hostPath,omitempty"`
}

// PVCLocation is a path inside a PersistentVolumeClaim.
type PVCLocation struct {
	// claimName is the name of a PersistentVolumeClaim in the job's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClaimName string `json:"claimName"`

	// path is a path relative to the root of the volume. It may not contain ".." segments, so
	// nothing a job names can escape its volume. Empty means the root of the volume.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to the root of the volume (no leading '/')"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..' segments"
	Path string `json:"path,omitempty"`
}

// HostPathLocation is an absolute path on the node.
type HostPathLocation struct {
	// path is an absolute, clean path on the node: no "..", "." or empty segments and no
	// trailing "/", so that what the administrator's job policy judges is what is mounted.
	// hostPath is off unless the administrator allows host folders.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="path must be absolute (start with '/')"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..' segments"
	// +kubebuilder:validation:XValidation:rule="!self.matches('//|/[.](/|$)') && (self == '/' || !self.endsWith('/'))",message="path must be clean: no '//', no '.' segments and no trailing '/'"
	Path string `json:"path"`
}

// GPUSelector names one GPU: the Kubernetes node it is on and either its UUID or its index on
// that node.
// +kubebuilder:validation:XValidation:rule="has(self.uuid) != has(self.index)",message="each entry of placement.gpus must set exactly one of uuid or index"
type GPUSelector struct {
	// node is the name of the Kubernetes node the GPU is on.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`

	// uuid is the GPU's UUID as NVML reports it (for example GPU-8f3c...).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	UUID string `json:"uuid,omitempty"`

	// index is the GPU's index on its node, as NVML numbers it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1023
	Index *int32 `json:"index,omitempty"`
}

// PlacementSpec says where the images of a job may run.
// +kubebuilder:validation:XValidation:rule="self.policy != 'Pinned' || (has(self.gpus) && size(self.gpus) > 0)",message="placement.gpus must list at least one GPU when placement.policy is Pinned"
// +kubebuilder:validation:XValidation:rule="!has(self.gpus) || size(self.gpus) == 0 || self.policy == 'Pinned'",message="placement.gpus may only be set when placement.policy is Pinned"
type PlacementSpec struct {
	// policy is how a GPU is chosen for each image. LeastLoaded (the default) picks the GPU with
	// the lowest effective memory load, counting images placed but not yet running; RoundRobin
	// sorts GPUs by load once and deals images in turn; Pack fills the most loaded GPU that still
	// fits; Pinned uses only the GPUs in gpus.
	// +optional
	// +kubebuilder:default=LeastLoaded
	Policy PlacementPolicy `json:"policy,omitempty"`

	// gpus lists the GPUs a Pinned job may use. Only allowed with policy Pinned.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	GPUs []GPUSelector `json:"gpus,omitempty"`

	// nodeSelector restricts the job to nodes with these labels.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations are added to every image pod, for example to run on tainted GPU nodes. They
	// are checked as a pod's are, so that a job is refused at creation rather than its pods.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.operator) || t.operator in ['', 'Exists', 'Equal'])",message="each toleration's operator must be Exists or Equal (empty means Equal)"
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.effect) || t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'])",message="each toleration's effect must be NoSchedule, PreferNoSchedule or NoExecute (empty means all three)"
	// +kubebuilder:validation:XValidation:rule="self.all(t, (has(t.key) && t.key != '') || (has(t.operator) && t.operator == 'Exists'))",message="a toleration with an empty key must have operator Exists (it then tolerates every taint)"
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || t.value == '')",message="a toleration with operator Exists must have no value"
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.tolerationSeconds) || (has(t.effect) && t.effect == 'NoExecute'))",message="tolerationSeconds is only allowed on a toleration with effect NoExecute"
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// allowCPUFallback lets images run on the CPU when the cluster has no usable GPU at all.
	// When false such a job waits for a GPU instead.
	// +optional
	// +kubebuilder:default=true
	AllowCPUFallback *bool `json:"allowCPUFallback,omitempty"`
}

// ImageGenerationJobSpec is what the user asks for. Everything that shapes the images is
// immutable after creation; suspend, parallelism and the deadlines may change.
// +kubebuilder:validation:XValidation:rule="has(self.negativePrompt) == has(oldSelf.negativePrompt)",message="negativePrompt is immutable",fieldPath=".negativePrompt"
// +kubebuilder:validation:XValidation:rule="has(self.seed) == has(oldSelf.seed)",message="seed is immutable",fieldPath=".seed"
// +kubebuilder:validation:XValidation:rule="has(self.image) == has(oldSelf.image)",message="image is immutable",fieldPath=".image"
// +kubebuilder:validation:XValidation:rule="has(self.resources) == has(oldSelf.resources)",message="resources is immutable",fieldPath=".resources"
// +kubebuilder:validation:XValidation:rule="has(self.gpuMemoryPerImage) == has(oldSelf.gpuMemoryPerImage)",message="gpuMemoryPerImage is immutable",fieldPath=".gpuMemoryPerImage"
// +kubebuilder:validation:XValidation:rule="has(self.maxFailedImages) == has(oldSelf.maxFailedImages)",message="maxFailedImages is immutable",fieldPath=".maxFailedImages"
// +kubebuilder:validation:XValidation:rule="!has(self.parallelism) || self.parallelism <= self.images",message="parallelism must not exceed images",fieldPath=".parallelism"
// +kubebuilder:validation:XValidation:rule="!has(self.maxFailedImages) || self.maxFailedImages <= self.images",message="maxFailedImages must not exceed images",fieldPath=".maxFailedImages"
type ImageGenerationJobSpec struct {
	// prompt is the text the images should show.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.trim() != ''",message="prompt must not be blank"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="prompt is immutable"
	Prompt string `json:"prompt"`

	// negativePrompt is the text the images should avoid (classifier-free guidance's
	// unconditional prompt).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="negativePrompt is immutable"
	NegativePrompt string `json:"negativePrompt,omitempty"`

	// images is how many images to generate. Each image runs in its own pod; image i uses
	// seed + i.
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="images is immutable"
	Images int32 `json:"images,omitempty"`

	// width of each image in pixels: a multiple of 8 from 64 to 2048.
	// +optional
	// +kubebuilder:default=512
	// +kubebuilder:validation:Minimum=64
	// +kubebuilder:validation:Maximum=2048
	// +kubebuilder:validation:MultipleOf=8
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="width is immutable"
	Width int32 `json:"width,omitempty"`

	// height of each image in pixels: a multiple of 8 from 64 to 2048.
	// +optional
	// +kubebuilder:default=512
	// +kubebuilder:validation:Minimum=64
	// +kubebuilder:validation:Maximum=2048
	// +kubebuilder:validation:MultipleOf=8
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="height is immutable"
	Height int32 `json:"height,omitempty"`

	// steps is the number of denoising steps, from 1 to 150.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=150
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="steps is immutable"
	Steps int32 `json:"steps,omitempty"`

	// guidanceScale is the classifier-free guidance scale as a decimal string from 0 to 50
	// (for example "7.5"); 1 disables guidance.
	// +optional
	// +kubebuilder:default="7.5"
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:Pattern=`^[0-9]{1,2}(\.[0-9]{1,3})?$`
	// +kubebuilder:validation:XValidation:rule="double(self) <= 50.0",message="guidanceScale must be at most 50"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="guidanceScale is immutable"
	GuidanceScale string `json:"guidanceScale,omitempty"`

	// sampler is the denoising schedule: ddim (default), euler-ancestral or dpmpp-2m-karras.
	// +optional
	// +kubebuilder:default=ddim
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sampler is immutable"
	Sampler Sampler `json:"sampler,omitempty"`

	// seed of the first image; image i uses seed + i. When unset the controller chooses one
	// and records it in status.seed.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="seed is immutable"
	Seed *int64 `json:"seed,omitempty"`

	// model is where the Stable Diffusion weights are: a diffusers folder or a single-file
	// checkpoint (.safetensors). The layout and the model family are detected automatically.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="model is immutable"
	Model StorageLocation `json:"model"`

	// output is the folder the PNG files are written to. Image i of job J in namespace N is
	// written to <path>/N/J/i.png.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="output is immutable"
	Output StorageLocation `json:"output"`

	// placement says which GPUs the images may use and how one is chosen.
	// +optional
	// +kubebuilder:default={policy:LeastLoaded,allowCPUFallback:true}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="placement is immutable"
	Placement PlacementSpec `json:"placement,omitempty"`

	// parallelism is the most image pods that may be active at once. Unset means no limit
	// beyond the free GPUs.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Parallelism *int32 `json:"parallelism,omitempty"`

	// backoffLimitPerImage is how many times one image is retried (on another GPU where
	// possible) before it counts as failed.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="backoffLimitPerImage is immutable"
	BackoffLimitPerImage *int32 `json:"backoffLimitPerImage,omitempty"`

	// maxFailedImages is how many images may fail before the whole job fails. Unset means the
	// job runs every image and fails only if all of them fail.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="maxFailedImages is immutable"
	MaxFailedImages *int32 `json:"maxFailedImages,omitempty"`

	// suspend stops the job: active image pods are deleted and no new ones are created until it
	// is set back to false. Finished images are kept.
	// +optional
	// +kubebuilder:default=false
	Suspend *bool `json:"suspend,omitempty"`

	// activeDeadlineSeconds is how long the job may run, counted from status.startTime, before
	// it is marked Failed and its active pods are stopped. Time spent suspended does not count.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// ttlSecondsAfterFinished deletes the job (and its pods) this many seconds after it
	// completes or fails. Unset keeps it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// image is the container image of the inference binary (sdgen). The operator's configured
	// default is used when unset.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="image is immutable"
	Image string `json:"image,omitempty"`

	// resources are the CPU and memory requests and limits of each image pod. The GPU is
	// requested by the controller and must not be listed here.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="resources is immutable"
	Resources *ImageResources `json:"resources,omitempty"`

	// gpuMemoryPerImage is the GPU memory one image is expected to use. It is reserved on the
	// chosen GPU until the image's real usage shows up in the live figures, so that a burst of
	// images does not herd onto the GPU that looks idlest. Defaulted by the controller from the
	// model family (SD 1.x, SD 2.x, SDXL) and the image size.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="gpuMemoryPerImage is immutable"
	GPUMemoryPerImage *resource.Quantity `json:"gpuMemoryPerImage,omitempty"`
}

// ImageResources are the CPU and memory requests and limits of an image pod.
type ImageResources struct {
	// requests are the minimum CPU and memory each image pod is given.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('sdfleet.io/') && !k.startsWith('nvidia.com/'))",message="GPUs are requested by the controller; do not list them in resources.requests"
	Requests corev1.ResourceList `json:"requests,omitempty"`

	// limits are the most CPU and memory each image pod may use.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('sdfleet.io/') && !k.startsWith('nvidia.com/'))",message="GPUs are requested by the controller; do not list them in resources.limits"
	Limits corev1.ResourceList `json:"limits,omitempty"`
}

// Condition types of an ImageGenerationJob.
const (
	// JobProgressing is True while images are being placed or generated.
	JobProgressing = "Progressing"
	// JobComplete is True when every image has finished and the job did not fail: every image
	// succeeded (reason Completed), or some failed within maxFailedImages (reason
	// CompletedWithFailures).
	JobComplete = "Complete"
	// JobFailed is True when the job gave up (too many failed images, a model error, its
	// deadline).
	JobFailed = "Failed"
	// JobSuspended is True while spec.suspend is true.
	JobSuspended = "Suspended"
)

// JobPhase is a one-word summary of a job's conditions, for kubectl's print columns.
// +kubebuilder:validation:Enum=Pending;Running;Suspended;Complete;Failed
type JobPhase string

// Phases of an ImageGenerationJob.
const (
	JobPhasePending   JobPhase = "Pending"
	JobPhaseRunning   JobPhase = "Running"
	JobPhaseSuspended JobPhase = "Suspended"
	JobPhaseComplete  JobPhase = "Complete"
	JobPhaseFailed    JobPhase = "Failed"
)

// ImagePhase is where one image is in its life.
// +kubebuilder:validation:Enum=Pending;Waiting;Running;Succeeded;Failed
type ImagePhase string

// Phases of one image.
const (
	// ImagePending: placed, its pod not yet running.
	ImagePending ImagePhase = "Pending"
	// ImageWaiting: no GPU has room for it yet.
	ImageWaiting ImagePhase = "Waiting"
	// ImageRunning: its pod is running.
	ImageRunning ImagePhase = "Running"
	// ImageSucceeded: its PNG is written.
	ImageSucceeded ImagePhase = "Succeeded"
	// ImageFailed: it failed and will not be retried.
	ImageFailed ImagePhase = "Failed"
)

// ImageStatus is the detail of one image.
type ImageStatus struct {
	// index of the image in the job, from 0.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`

	// phase of the image.
	Phase ImagePhase `json:"phase"`

	// seed the image was generated with (the job's seed + index).
	// +optional
	Seed int64 `json:"seed,omitempty"`

	// attempts is how many pods have run this image, the current one included. Pods evicted or
	// deleted from outside before they ran do not count.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// podName is the name of the image's current (or last) pod.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PodName string `json:"podName,omitempty"`

	// node is the Kubernetes node of the image's current (or last) pod.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`

	// device is where the image runs: "gpu" or "cpu".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Device string `json:"device,omitempty"`

	// gpuUUID is the UUID of the GPU the image was placed on.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	GPUUUID string `json:"gpuUUID,omitempty"`

	// gpuIndex is the index, on its node, of the GPU the image was placed on.
	// +optional
	GPUIndex *int32 `json:"gpuIndex,omitempty"`

	// gpuMemoryLoadPercent is the effective memory load of the GPU, in percent, when it was
	// chosen for this image.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	GPUMemoryLoadPercent *int32 `json:"gpuMemoryLoadPercent,omitempty"`

	// failedGPUs are the UUIDs of GPUs this image already failed on; retries avoid them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=11
	FailedGPUs []string `json:"failedGPUs,omitempty"`

	// startTime is when the image's current pod started running.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// finishTime is when the image succeeded or finally failed.
	// +optional
	FinishTime *metav1.Time `json:"finishTime,omitempty"`

	// outputPath is the PNG file of the image, inside the output volume.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	OutputPath string `json:"outputPath,omitempty"`

	// sha256 of the PNG file, as reported by the inference binary.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256,omitempty"`

	// durationMilliseconds is how long the inference binary took for this image.
	// +optional
	DurationMilliseconds *int64 `json:"durationMilliseconds,omitempty"`

	// message explains the phase, for example why the image failed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ImageGenerationJobStatus is what the controller observed. Its size is bounded whatever the
// number of images: per-image detail is kept for at most MaxImageDetails images (the active
// ones first, then failed, then the most recently finished), and the rest is described by the
// counts and by compressed index ranges.
type ImageGenerationJobStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase summarises the conditions in one word.
	// +optional
	Phase JobPhase `json:"phase,omitempty"`

	// conditions are Progressing, Complete, Failed and Suspended.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// seed is the seed of image 0: spec.seed, or the one the controller chose.
	// +optional
	Seed *int64 `json:"seed,omitempty"`

	// pending is the number of images not yet running (waiting for a GPU or starting).
	// +optional
	Pending int32 `json:"pending,omitempty"`

	// running is the number of images whose pod is running.
	// +optional
	Running int32 `json:"running,omitempty"`

	// succeeded is the number of images written.
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`

	// failed is the number of images that failed for good.
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// completedIndexes are the indexes of the succeeded images as compressed ranges, for
	// example "0-3,7".
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CompletedIndexes string `json:"completedIndexes,omitempty"`

	// failedIndexes are the indexes of the failed images as compressed ranges.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	FailedIndexes string `json:"failedIndexes,omitempty"`

	// images is the detail of at most 256 images: every active one first, then failed ones,
	// then the most recently finished.
	// +optional
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=256
	Images []ImageStatus `json:"images,omitempty"`

	// startTime is when the controller started the job, or last resumed it: it is cleared
	// while the job is suspended, as for a batch/v1 Job.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the job completed or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// memoryPerImage is the GPU memory the controller reserves for each image and where the
	// figure comes from: spec.gpuMemoryPerImage, what finished images of the same model used,
	// or the model family's default.
	// +optional
	MemoryPerImage *MemoryEstimate `json:"memoryPerImage,omitempty"`
}

// MemorySource says where a memory estimate comes from.
// +kubebuilder:validation:Enum=Spec;Learned;Default
type MemorySource string

const (
	// MemoryFromSpec is spec.gpuMemoryPerImage.
	MemoryFromSpec MemorySource = "Spec"
	// MemoryLearned is the largest peak memory per pixel of the finished images of the same
	// model (the same model location), scaled to this job's image size.
	MemoryLearned MemorySource = "Learned"
	// MemoryDefault is the model family's default for the image size, before any image of the
	// model has finished.
	MemoryDefault MemorySource = "Default"
)

// MemoryEstimate is the memory reserved for one image.
type MemoryEstimate struct {
	// bytes is the memory reserved for one image.
	// +required
	// +kubebuilder:validation:Minimum=0
	Bytes int64 `json:"bytes"`

	// bytesPerPixel is bytes over the image's pixels, rounded.
	// +optional
	// +kubebuilder:validation:Minimum=0
	BytesPerPixel int64 `json:"bytesPerPixel,omitempty"`

	// source is Spec, Learned or Default.
	// +required
	Source MemorySource `json:"source"`

	// family is the model family the figure is for ("sd1", "sd2", "sdxl") when known: reported
	// by a finished image, or guessed from the model's path.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Family string `json:"family,omitempty"`

	// images is how many finished images of the model the figure was learned from.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Images int32 `json:"images,omitempty"`
}

// MaxJobNameLength is the longest name of an ImageGenerationJob: its image pods are named
// <name>-<index>-r<retry>, at most 9 characters more ("-9999-r99"), and a pod's name is at most
// 253 characters. The API server refuses a longer name (the CEL rule on the type).
const MaxJobNameLength = 244

// ImageGenerationJob asks for a batch of Stable Diffusion images. The controller runs one pod
// per image, each on the GPU with the most room at that moment, retries failures on other GPUs
// and reports every image in the status.
//
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 244",message="metadata.name must be at most 244 characters: image pods are named <name>-<index>-r<retry>, and a pod name is at most 253 characters"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=igj,categories=sdfleet
// +kubebuilder:printcolumn:name="Images",type=integer,JSONPath=`.spec.images`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageGenerationJob struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the user asks for.
	// +required
	Spec ImageGenerationJobSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ImageGenerationJobStatus `json:"status,omitempty"`
}

// ImageGenerationJobList is a list of ImageGenerationJobs.
//
// +kubebuilder:object:root=true
type ImageGenerationJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageGenerationJob `json:"items"`
}
