// Package testing holds fixture builders for the controller's tests and benchmark:
// ImageGenerationJobs (MakeJob("a").Images(4).Obj()), GPUNodes with their GPUs, and helpers that
// play the kubelet by moving image pods through their phases with sdgen's exit codes and
// termination messages.
package testing
