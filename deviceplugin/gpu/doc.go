// Package gpu is the node agent's view of its GPUs: one small Source interface (static device
// facts, a sample of live load, a stream of error events), its implementation over NVML, and
// Combined, which joins the sources of a node with GPUs of two vendors (package amdgpu is the
// AMD one).
//
// The same NVML adapter serves real GPUs (go-nvml loading libnvidia-ml at run time) and
// simulated ones (go-nvml's mock server, see package simulator), so the simulated path exercises
// exactly the code that runs on hardware.
package gpu
