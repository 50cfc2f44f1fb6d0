// Package envtest starts the source-built kube-apiserver and etcd for sdfleet's integration
// tests, with sdfleet's CRDs installed, so every package can run against a real API server from
// `make test` or from a plain `go test` in an editor.
package envtest
