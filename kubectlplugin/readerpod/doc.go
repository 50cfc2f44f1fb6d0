// Package readerpod copies a job's PNGs out of its output volume when no gateway serves them,
// with nothing but the caller's own credentials: it creates a short-lived reader pod in the
// job's namespace that mounts the volume read-only and runs the job's own image, streams the
// files out of it through the API server's exec as a tar (package imagestream), and deletes
// the pod afterwards, on error and on interrupt too.
//
// Since the caller's credentials create and exec into the pod, RBAC and Pod Security decide:
// the access the copy needs is checked first with SelfSubjectAccessReviews, so that a caller
// who may not create pods or exec into them gets one clear error and no pod is left behind.
// The pod itself meets Pod Security "restricted" in everything but the hostPath volume a job
// with a host folder needs (which the job policy only allows in privileged namespaces): non-root,
// no privilege escalation, no capabilities, the runtime's seccomp profile, a read-only root
// filesystem, no service account token, small CPU and memory limits and a deadline.
//
// A host folder lives on each node, so a job whose output is a host path gets one reader pod
// per node its images ran on, pinned there; a PersistentVolumeClaim gets one reader pod.
package readerpod
