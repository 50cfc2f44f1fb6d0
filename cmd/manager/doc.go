// Command manager is the sdfleet operator: a controller-runtime manager that runs the
// ImageGenerationJob controller, with leader election, health and readiness probes, Prometheus
// metrics and structured (zap) logs. Run it with --help for every flag.
package main
