// Package packaging checks how sdfleet is shipped: the Helm chart in charts/sdfleet, the
// kustomize configuration in config/, the Dockerfile and the Grafana dashboard.
//
// Its tests render the chart through Helm's Go SDK with default values and with each feature
// turned on, run `helm lint`, apply every rendered object with server-side dry-run to the
// source-built API server (with Pod Security admission enforcing "restricted"), check the RBAC
// rules against the verbs the code uses, check that the Dockerfile copies paths that exist and
// builds what `make build` builds, and evaluate every PromQL expression of the dashboard in a
// real Prometheus that scrapes the node agent (simulated GPUs) and the operator while a job runs.
//
// The non-test files hold the rendering helpers the tests share.
package packaging
