// Package charts holds the Helm charts (charts/outrigger). It has no code;
// its test lints and renders the chart with helm and validates the output
// and examples/k8s with kubeconform against schemas generated from the
// Kubernetes OpenAPI spec, offline.
package charts
