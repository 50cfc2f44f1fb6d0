// Package metrics exposes the node agent's Prometheus metrics. GPU metrics carry the labels
// node, gpu (the index) and UUID, spelled as dcgm-exporter spells them, so dashboards can join
// the two exporters on UUID.
package metrics
