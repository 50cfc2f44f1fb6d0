// Command gateway is sdfleet's HTTP gateway: it serves the OpenAI Images API, the
// AUTOMATIC1111 web UI API and sdfleet's native API, turning each request into an
// ImageGenerationJob, authenticating callers with TokenReview and authorising them with
// SubjectAccessReview. Run it with --help for every flag.
package main
