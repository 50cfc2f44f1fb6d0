// Package controllers holds the ImageGenerationJob controller: it runs one pod per image on the
// GPU the placement engine chooses, retries failed images away from the GPUs they failed on,
// and reports every image in the job's status.
//
// Subpackages: placement (the choice of GPU), throughput (each GPU's learned speed and the
// expected finishes placement ranks by), fairshare (the GPU slots each job may hold), ledger
// (the in-flight placements), podcontract (the interface with the inference binary), indexset
// (compressed index ranges) and testing (fixture builders for tests).
package controllers
