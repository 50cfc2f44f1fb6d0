// Command bench-gateway loads the HTTP gateway (cmd/gateway, run as its own process on
// 127.0.0.1) against the source-built API server (test/envtest). Several service accounts,
// each with a token from the TokenRequest API, send a bounded number of concurrent
// AUTOMATIC1111 txt2img requests; a stand-in for the controller completes each job as soon as it
// appears, writing real PNGs, so that what is measured is the gateway, not generation.
//
// It prints requests per second, the p50/p99 end-to-end latency and the gateway's overhead
// (the end-to-end latency minus the time the job spent with the stand-in), p50/p99 of a
// request that creates no job (GET /v1/gpus), and the gateway's resident memory; it fails when
// a request is lost, answered twice or answered with another request's images.
//
//	go run ./hack/bench-gateway                                    # 1000 requests, 32 at once, 8 callers
//	go run ./hack/bench-gateway --requests 4000 --concurrency 64 --tokens 16
package main
