// Package ops holds the operations kit: a Grafana dashboard
// (grafana-dashboard.json) and Prometheus alerting rules (alerts.yaml) for
// an Outrigger mesh. It has no code; its test checks that the dashboard
// loads, that every PromQL expression in both files parses with
// Prometheus' own parser, and that every metric they use is one the proxy
// or the control plane exports (read from the code's registries, so a
// renamed metric fails the test).
package ops
