// Package gateway is sdfleet's HTTP front door: it turns image requests in the APIs existing
// clients already speak into ImageGenerationJobs and returns the images.
//
//   - OpenAI Images API: POST /v1/images/generations, GET /v1/models (openai.go).
//   - AUTOMATIC1111 web UI API: POST /sdapi/v1/txt2img, GET /sdapi/v1/samplers,
//     /sdapi/v1/sd-models and /sdapi/v1/progress (a1111.go).
//   - Native: POST /v1/jobs, GET /v1/jobs/{namespace}/{name}, its images, GET /v1/gpus and the
//     Server-Sent Events stream GET /v1/events (native.go, events.go).
//
// Callers send a Kubernetes bearer token. The gateway validates it with a TokenReview and
// authorises every action with a SubjectAccessReview, so the cluster's RBAC decides (auth.go).
// Each caller has a token bucket (ratelimit.go). Jobs are created from the administrator's
// model map and output location only (config.go): nothing a caller sends becomes a host path
// or a container image. Images are read from the output volume, mounted read-only, at the
// paths the job's status names (images.go). Waiting and the event stream are driven by
// informers, never by polling (watch.go).
//
// "/" serves the web dashboard (package dashboard), a page that calls the API above with the
// caller's token.
package gateway
