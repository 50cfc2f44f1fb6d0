// Package controllers holds the ImageGenerationJob controller: it runs one pod per image on the
// GPU the placement engine chooses, retries failed images away from the GPUs they failed on,
// and reports every image in the job's status.
//
// Subpackages: placement (the choice of GPU), ledger (the in-flight placements), podcontract
// (the interface with the inference binary), indexset (compressed index ranges) and testing
// (fixture builders for tests).
package controllers
