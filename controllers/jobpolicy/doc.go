// Package jobpolicy is the administrator's policy for what an ImageGenerationJob may make the
// operator do on a user's behalf: which host folders its pods may mount and which container
// images they may run. Without it the operator would be a confused deputy: anyone allowed to
// create a job, but not pods, would get host mounts and images they could not get themselves.
//
// The same rules are enforced twice. The chart's ValidatingAdmissionPolicy (CEL, parameterised
// by a ConfigMap holding the same lists) refuses a job when it is created; the controller
// checks every job again with Policy.Check before it creates a pod, so that a job stored before
// the policy was installed or tightened never runs.
//
// # Host paths
//
// hostPath is off unless the administrator lists allowed folders. A folder allows itself and
// everything below it ("/" allows every path). The output path must be in an allowed folder;
// for a model, what the pod mounts is the model's parent folder (a model directly under "/"
// is mounted itself: podcontract.HostModelMount), and that folder must be allowed.
//
// # Images
//
// spec.image must match an allowed image prefix: a repository (any tag or digest of it:
// "ghcr.io/sdfleet/sdgen" allows "ghcr.io/sdfleet/sdgen:1.2" and "ghcr.io/sdfleet/sdgen@sha256:...",
// not "ghcr.io/sdfleet/sdgen-evil"), or a prefix ending in "/" that allows every repository below
// it. A job without spec.image runs the operator's default image, which is always allowed; with no
// list given, the default image's repository is the only one allowed.
package jobpolicy
