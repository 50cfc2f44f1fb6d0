// Package health decides whether each GPU may receive work. Error events (NVML's Xid critical
// errors, double-bit ECC errors and lost GPUs; rising uncorrectable RAS counters of AMD GPUs)
// and failed queries (NVML, or amdgpu sysfs reads and vanished cards) make a GPU unhealthy,
// with the reason; application Xids (a crashed CUDA program, not a sick GPU) are ignored. Unlike the
// reference NVIDIA plugin, a GPU recovers: after a quiet period without failures and a number of
// consecutive successful probes it is healthy again and re-advertised.
//
// The Tracker is pure state: it returns the transitions it made and leaves logging of them to the
// caller's logger, counting in Counts, advertising and publishing to the agent.
package health
