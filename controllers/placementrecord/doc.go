// Package placementrecord is what the controller remembers of each placement decision: the
// GPU it chose for an image, the few other GPUs it compared, each with its effective memory
// load, its expected finish when speeds were known, and in words why the winner won and each
// other GPU lost. The controller writes it as a small JSON annotation on the image pod, when it
// builds the pod; `kubectl sdfleet explain-placement` reads it back. It is bounded: at most
// MaxOthers other GPUs and MaxBytes in all.
package placementrecord
