// Package harness runs the bench: it starts the targets, drives each
// scenario's load at each of them in interleaved repetitions, measures the
// proxy processes, cross-checks with wrk/h2load/ghz and collects everything
// into a report.Run.
package harness

import (
	"fmt"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// Scenario is one kind of traffic.
type Scenario struct {
	Name        string
	Description string
	Protocol    loadgen.Protocol
	Method      string
	Path        string
	BodySize    int
	// ResponseSize is the gRPC response payload.
	ResponseSize int
	Workers      int
	// Conns is the connection count for h2c and gRPC.
	Conns int
	// Warmup runs closed loop before the measured runs and is discarded.
	Warmup time.Duration
	// OpenRates are the open-loop rates, each run for OpenDuration. The
	// first is the reference rate for the latency table.
	OpenRates    []float64
	OpenDuration time.Duration
	// ClosedDuration is the closed-loop run; zero skips it.
	ClosedDuration time.Duration
	// CrossCheck names the external tool to compare with: "wrk", "h2load",
	// "ghz" or "".
	CrossCheck     string
	CrossCheckTime time.Duration
	// BytesPerOp, when set, makes the report show GB/s and CPU s/GiB
	// (operations × BytesPerOp) instead of req/s.
	BytesPerOp int64
	// Versus is the peer the report's second ratio column compares with
	// (default haproxy).
	Versus string
}

// Validate checks the scenario is runnable and bounded.
func (s Scenario) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("harness: scenario without a name")
	}
	if s.Workers < 1 {
		return fmt.Errorf("harness: scenario %s: workers must be at least 1", s.Name)
	}
	if len(s.OpenRates) > 0 && s.OpenDuration <= 0 {
		return fmt.Errorf("harness: scenario %s: open-loop rates need a duration", s.Name)
	}
	if len(s.OpenRates) == 0 && s.ClosedDuration <= 0 {
		return fmt.Errorf("harness: scenario %s measures nothing", s.Name)
	}
	return nil
}

// endpoint picks the target's address for the scenario's protocol.
func (s Scenario) endpoint(ep targets.Endpoints) string {
	switch s.Protocol {
	case loadgen.H2C:
		return ep.H2C
	case loadgen.GRPC, loadgen.GRPCStream:
		return ep.GRPC
	case loadgen.H3:
		return ep.H3
	case loadgen.TCPBulk:
		return ep.TCP
	default:
		return ep.HTTP1
	}
}

// loadTarget is the generator's view of the scenario against one address.
func (s Scenario) loadTarget(addr string) loadgen.Target {
	t := loadgen.Target{
		Protocol: s.Protocol, Addr: addr, Method: s.Method, Path: s.Path,
		ResponseSize: s.ResponseSize, Conns: s.Conns,
	}
	if s.BodySize > 0 {
		t.Body = make([]byte, s.BodySize)
	}
	return t
}

// RefRate is the open-loop rate the latency table reports.
func (s Scenario) RefRate() float64 {
	if len(s.OpenRates) == 0 {
		return 0
	}
	return s.OpenRates[0]
}

// Estimate is how long the measured runs take for n targets and reps
// repetitions, without start-up and cross-checks.
func (s Scenario) Estimate(targets, reps int) time.Duration {
	per := s.Warmup + s.ClosedDuration + time.Duration(len(s.OpenRates))*s.OpenDuration
	return time.Duration(targets*reps) * per
}

const smallPath = "/?size=128"

// FullScenarios is `make bench`.
func FullScenarios() []Scenario {
	return []Scenario{
		{
			Name: "small-h1", Description: "HTTP/1.1 keep-alive GET, 128-byte response",
			Protocol: loadgen.HTTP1, Path: smallPath, Workers: 50,
			Warmup: 300 * time.Millisecond, OpenRates: []float64{1000, 4000, 8000, 16000},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
			CrossCheck: "wrk", CrossCheckTime: 3 * time.Second,
		},
		{
			Name: "small-h2c", Description: "HTTP/2 cleartext (prior knowledge) GET, 128-byte response; HTTP/1.1 upstream",
			Protocol: loadgen.H2C, Path: smallPath, Workers: 100, Conns: 10,
			Warmup: 300 * time.Millisecond, OpenRates: []float64{1000},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
			CrossCheck: "h2load", CrossCheckTime: 3 * time.Second,
		},
		{
			Name: "grpc-unary", Description: "gRPC unary TestService/UnaryCall, 128-byte request and response; h2c upstream",
			Protocol: loadgen.GRPC, BodySize: 128, ResponseSize: 128, Workers: 50, Conns: 1,
			Warmup: 300 * time.Millisecond, OpenRates: []float64{1000},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
			CrossCheck: "ghz", CrossCheckTime: 3 * time.Second,
		},
		{
			Name: "grpc-stream", Description: "gRPC bidi streaming: one long-lived FullDuplexCall per worker, 128-byte message and answer per operation; h2c upstream",
			Protocol: loadgen.GRPCStream, BodySize: 128, ResponseSize: 128, Workers: 50, Conns: 1,
			Warmup: 200 * time.Millisecond, OpenRates: []float64{1000},
			OpenDuration: time.Second, ClosedDuration: 2 * time.Second,
		},
		{
			Name: "body-1mb", Description: "HTTP/1.1 POST of a 1 MiB body, echoed back (1 MiB each way)",
			Protocol: loadgen.HTTP1, Method: "POST", Path: "/echo", BodySize: 1 << 20, Workers: 8,
			Warmup: 300 * time.Millisecond, OpenRates: []float64{100},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
		},
		{
			Name: "conns-1000", Description: "HTTP/1.1 keep-alive GET over 1,000 concurrent connections, 128-byte response",
			Protocol: loadgen.HTTP1, Path: smallPath, Workers: 1000,
			Warmup: 500 * time.Millisecond, OpenRates: []float64{2000},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
			CrossCheck: "wrk", CrossCheckTime: 3 * time.Second,
		},
	}
}

// ProtocolScenarios is `make bench-protocols`: HTTP/3 against Caddy's
// HTTP/3 (the same quic-go stack) and the direct h3 floor, and bulk TCP
// through tcp_proxy against direct and HAProxy. Targets without the
// protocol (nginx, HAProxy for h3; nginx, Caddy for TCP) are left out.
func ProtocolScenarios() []Scenario {
	return []Scenario{
		{
			Name: "small-h3", Description: "HTTP/3 GET, 128-byte response; HTTP/1.1 upstream (direct: the backend's own quic-go HTTP/3 server)",
			Protocol: loadgen.H3, Path: smallPath, Workers: 64, Conns: 4,
			Warmup: 500 * time.Millisecond, OpenRates: []float64{1000},
			OpenDuration: 2 * time.Second, ClosedDuration: 3 * time.Second,
			Versus: Caddy,
		},
		{
			Name: "tcp-bulk", Description: "raw TCP bulk download from the backend's byte source; one operation = 1 MiB read",
			Protocol: loadgen.TCPBulk, Workers: 4,
			Warmup: 300 * time.Millisecond, ClosedDuration: 3 * time.Second,
			BytesPerOp: loadgen.TCPBulkChunk,
		},
	}
}

// QuickScenarios is `make bench-quick`: one short scenario.
func QuickScenarios() []Scenario {
	return []Scenario{{
		Name: "small-h1", Description: "HTTP/1.1 keep-alive GET, 128-byte response",
		Protocol: loadgen.HTTP1, Path: smallPath, Workers: 50,
		Warmup: 200 * time.Millisecond, OpenRates: []float64{1000},
		OpenDuration: time.Second, ClosedDuration: 2 * time.Second,
		CrossCheck: "wrk", CrossCheckTime: 2 * time.Second,
	}}
}
