// Package kubectlplugin is `kubectl sdfleet`, the kubectl plugin of platform teams:
//
//   - top: every GPU of the cluster with its load, the memory sdfleet reserves on it, health,
//     learned speed and the images running on it and waiting for it (top.go); --watch
//     redraws on every change.
//   - generate: submits a job, through the gateway or directly with the caller's
//     credentials, follows it with a progress bar (plain lines when the output is not a
//     terminal), downloads its PNGs and prints where each image ran (generate.go).
//   - images: downloads a finished job's PNGs, checking each against the SHA-256 in the
//     job's status (images.go, download.go).
//   - explain-placement: for each image of a job, the GPU chosen and the GPUs compared with
//     it when it was placed, as the controller recorded them on the image pod, with the
//     events and the GPUs as they are now as the fallback (explain.go).
//
// The commands are built on k8s.io/cli-runtime, so --kubeconfig, --context, -n/--namespace
// and the other standard flags behave as in kubectl. Images are read through the gateway's
// native API, which checks the caller's token against the cluster's RBAC, or, without a
// gateway, through a short-lived reader pod the caller creates (package readerpod).
package kubectlplugin
