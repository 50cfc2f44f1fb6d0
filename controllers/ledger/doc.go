// Package ledger is the controller's in-memory record of the image pods that hold a GPU: which
// GPU each active pod was placed on, and whether its memory is still only a reservation
// (placed, but not yet visible in the node agent's live figures).
//
// It plays the role of a job controller's "expectations": a pod is recorded before it is
// created, so the next decision counts it even when the informer cache has not seen it yet.
// That is what keeps a burst of images, or two jobs reconciled at the same instant, from
// herding onto the GPU that looks idlest. A reservation is cleared when the GPU's published used
// memory has grown by the pod's memory after the pod started (see Ledger.Usage), and the entry
// when the pod finished or is gone. After a restart the ledger is rebuilt from the placement
// annotations of the pods in the cache.
//
// The ledger also measures what the throughput learner needs: the work in flight on each GPU,
// and for a finished pod how many pods shared its GPU on average while it ran.
package ledger
