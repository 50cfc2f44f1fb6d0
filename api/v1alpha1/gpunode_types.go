package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPUHealth says whether a GPU may receive new work.
// +kubebuilder:validation:Enum=Healthy;Unhealthy
type GPUHealth string

const (
	// GPUHealthy GPUs are advertised to the kubelet and may be chosen.
	GPUHealthy GPUHealth = "Healthy"
	// GPUUnhealthy GPUs (an XID error, ECC errors, failing NVML queries) are never chosen.
	GPUUnhealthy GPUHealth = "Unhealthy"
)

// ResourcePrefix starts the name of the extended resource that carries one physical GPU:
// sdfleet.io/gpu-<index>. One resource per GPU lets the controller pin an image pod to exactly
// the GPU it chose, with no node-side matching.
const ResourcePrefix = "sdfleet.io/gpu-"

// GPUStatus is the live state of one GPU.
type GPUStatus struct {
	// index is the GPU's index on its node, as NVML numbers it.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`

	// uuid is the GPU's UUID as NVML reports it (GPU-...). It is the UUID label of
	// dcgm-exporter's metrics too.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	UUID string `json:"uuid"`

	// productName is the GPU model, for example "NVIDIA H100 80GB HBM3".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ProductName string `json:"productName,omitempty"`

	// memoryTotalBytes is the GPU's total memory.
	// +kubebuilder:validation:Minimum=0
	MemoryTotalBytes int64 `json:"memoryTotalBytes"`

	// memoryUsedBytes is the memory in use on the GPU, by any process.
	// +kubebuilder:validation:Minimum=0
	MemoryUsedBytes int64 `json:"memoryUsedBytes"`

	// utilizationPercent is the share of the last sample period during which a kernel ran.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	UtilizationPercent int32 `json:"utilizationPercent,omitempty"`

	// temperatureCelsius is the GPU core temperature.
	// +optional
	TemperatureCelsius int32 `json:"temperatureCelsius,omitempty"`

	// powerWatts is the GPU's power draw.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PowerWatts int32 `json:"powerWatts,omitempty"`

	// health is Healthy or Unhealthy.
	Health GPUHealth `json:"health"`

	// healthReason says why the GPU is unhealthy, for example "XID 79" or "NVML query failed:
	// ...".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	HealthReason string `json:"healthReason,omitempty"`

	// resourceName is the extended resource that carries this GPU (sdfleet.io/gpu-<index>).
	// +kubebuilder:validation:MaxLength=253
	ResourceName string `json:"resourceName"`

	// slots is how many images may run on this GPU at once (the device IDs its resource
	// advertises).
	// +kubebuilder:validation:Minimum=0
	Slots int32 `json:"slots"`
}

// GPUSpeed is the speed the operator learned for one GPU from the images that finished on it.
type GPUSpeed struct {
	// uuid is the GPU's UUID, as in gpus.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	UUID string `json:"uuid"`

	// index is the GPU's index on its node.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`

	// secondsPerMegapixelStep is the exponentially weighted time one sampler step of a
	// one-megapixel image takes on this GPU when it has the GPU to itself, in seconds, as a
	// decimal string (for example "0.42").
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	SecondsPerMegapixelStep string `json:"secondsPerMegapixelStep"`

	// images is how many finished images the figure rests on.
	// +kubebuilder:validation:Minimum=0
	Images int64 `json:"images"`
}

// GPUNodeStatus is the live state of every GPU on one node, as its node agent sees it.
type GPUNodeStatus struct {
	// gpus lists every GPU the agent manages on the node. Empty on a node without GPUs.
	// +optional
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=1024
	GPUs []GPUStatus `json:"gpus,omitempty"`

	// gpuCount is the number of GPUs in gpus.
	// +optional
	GPUCount int32 `json:"gpuCount,omitempty"`

	// healthyGPUs is the number of Healthy GPUs in gpus.
	// +optional
	HealthyGPUs int32 `json:"healthyGPUs,omitempty"`

	// memoryUsedPercent is the memory used over all GPUs of the node, in percent.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MemoryUsedPercent int32 `json:"memoryUsedPercent,omitempty"`

	// lastHeartbeatTime is when the agent last published. A GPUNode whose heartbeat is older
	// than three heartbeat intervals is treated as fully loaded.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`

	// sampleIntervalSeconds is how often the agent samples its GPUs.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SampleIntervalSeconds int32 `json:"sampleIntervalSeconds,omitempty"`

	// heartbeatIntervalSeconds is the longest time between two writes of this status when
	// nothing changes. A GPUNode whose heartbeat is older than three of these intervals is
	// silent: its GPUs are treated as fully loaded.
	// +optional
	// +kubebuilder:validation:Minimum=0
	HeartbeatIntervalSeconds int32 `json:"heartbeatIntervalSeconds,omitempty"`

	// simulated is true when the GPUs are simulated (demo and CI clusters without GPUs).
	// +optional
	Simulated bool `json:"simulated,omitempty"`

	// agentVersion is the version of the node agent that wrote this status.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	AgentVersion string `json:"agentVersion,omitempty"`

	// learnedSpeeds are the speeds the operator learned for the node's GPUs from the durations
	// of the images that finished on them. The operator writes them (its own field manager);
	// the node agent never does. After a restart the operator starts from them.
	// +optional
	// +listType=map
	// +listMapKey=uuid
	// +kubebuilder:validation:MaxItems=1024
	LearnedSpeeds []GPUSpeed `json:"learnedSpeeds,omitempty"`

	// speeds summarises learnedSpeeds for kubectl get: "<index>=<seconds per megapixel-step>"
	// for each GPU, in index order.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Speeds string `json:"speeds,omitempty"`
}

// GPUNode publishes the live load of every GPU on one Kubernetes node. It is cluster-scoped,
// has the same name as its Node and is written only by that node's agent.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gpun,categories=sdfleet
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.status.gpuCount`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.healthyGPUs`
// +kubebuilder:printcolumn:name="Memory%",type=integer,JSONPath=`.status.memoryUsedPercent`
// +kubebuilder:printcolumn:name="Simulated",type=boolean,JSONPath=`.status.simulated`,priority=1
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Speed s/MP-step",type=string,JSONPath=`.status.speeds`
type GPUNode struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name is the Node's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is the live state of the node's GPUs.
	// +optional
	Status GPUNodeStatus `json:"status,omitempty"`
}

// GPUNodeList is a list of GPUNodes.
//
// +kubebuilder:object:root=true
type GPUNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GPUNode `json:"items"`
}
