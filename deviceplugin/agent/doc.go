// Package agent wires the node agent together: it opens the GPU source (NVML, amdgpu, both, the
// simulator or none), samples every GPU each interval, feeds the health tracker from samples and
// error events,
// advertises GPUs to the kubelet, publishes the load to the GPUNode and serves metrics and probes.
package agent
