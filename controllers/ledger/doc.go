// Package ledger is the controller's in-memory record of the image pods that hold a GPU: which
// GPU each active pod was placed on, and whether its memory is still only a reservation
// (placed, but not yet visible in the node agent's live figures).
//
// It plays the role of a job controller's "expectations": a pod is recorded before it is
// created, so the next decision counts it even when the informer cache has not seen it yet.
// That is what keeps a burst of images, or two jobs reconciled at the same instant, from
// herding onto the GPU that looks idlest. Entries are cleared when the pod is seen running with
// its memory visible (memory no longer reserved), finished or gone (entry removed). After a
// restart the ledger is rebuilt from the placement annotations of the pods in the cache.
package ledger
