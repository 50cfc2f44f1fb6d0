// Package dashboard is sdfleet's web page, served by the gateway at "/": a live board of every
// GPU of the cluster, the caller's jobs with their progress and where each image ran, a gallery
// of the finished images with their generation parameters, and a form to submit a job.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary (static/), with no build
// step and nothing fetched from elsewhere, so it works on a cluster without internet access.
// It speaks only the gateway's native API with the caller's Kubernetes bearer token, which it
// asks for once and keeps in memory: the gateway's TokenReview and SubjectAccessReview checks
// apply to everything it shows. Browsers' EventSource cannot send an Authorization header, so
// the page reads /v1/events through fetch() streaming instead of putting the token in a URL.
package dashboard
