// Package report turns bench measurements into the Markdown table committed
// as bench/results/latest.md, a JSON record of every run, and PNG plots
// drawn with gonum.org/v1/plot.
package report

import "time"

// Run is everything one bench invocation measured.
type Run struct {
	Started  time.Time
	Duration time.Duration
	Command  string
	Machine  Machine
	Targets  []TargetInfo
	// Scenarios in the order they ran.
	Scenarios    []ScenarioInfo
	Measurements []Measurement
	CrossChecks  []CrossCheck
	Profile      *Profile `json:",omitempty"`
	// HopProfiles are the --profile-target profiles: one proxy of a target
	// under the first scenario's open-loop load.
	HopProfiles []Profile `json:",omitempty"`
	// Comparisons are the latency the mTLS two-hop target adds over the
	// plaintext one and each over direct (MTLSComparisons), when measured.
	Comparisons []Comparison `json:",omitempty"`
	// Notes are things the reader must know (targets skipped, tools missing).
	Notes []string
}

// Machine describes where the run happened.
type Machine struct {
	CPUModel string
	NProc    int
	Kernel   string
	GoVer    string
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's 1, 5 and 15 minute
	// figures when the run started and ended.
	LoadAvgStart string `json:",omitempty"`
	LoadAvgEnd   string `json:",omitempty"`
}

// TargetInfo describes one target.
type TargetInfo struct {
	Name    string
	Version string
	Config  string
	// IdleRSS is the proxy processes' summed RSS after start, before load.
	IdleRSS int64
}

// ScenarioInfo describes one scenario.
type ScenarioInfo struct {
	Name        string
	Description string
	Protocol    string
	Workers     int
	Conns       int
	// RefRate is the open-loop rate the latency table reports.
	RefRate float64
	// BytesPerOp, when set, turns the closed-loop table into GB/s and CPU
	// s/GiB.
	BytesPerOp int64 `json:",omitempty"`
	// Versus is the target of the second ratio column (default haproxy).
	Versus string `json:",omitempty"`
}

// Measurement is one run of one scenario against one target.
type Measurement struct {
	Scenario string
	Target   string
	Rep      int
	Mode     string  // "open" or "closed"
	Rate     float64 // open loop: offered req/s
	// Throughput is successful requests per second.
	Throughput float64
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	P999       time.Duration
	Max        time.Duration
	OK         int64
	Failed     int64
	Errors     string `json:",omitempty"`
	// SendLagP99 is how late the generator itself sent (open loop).
	SendLagP99 time.Duration
	// CPU is the proxy processes' utime+stime during the run; zero for direct.
	CPU     time.Duration
	PeakRSS int64
	// LastHopConns is how many connections the outrigger nearest the
	// backend accepted during the run (its downstream_cx_total growth):
	// for a two-hop target, the connections (with mTLS, the handshakes)
	// between the sidecars. Known only for outrigger targets.
	LastHopConns      int64 `json:",omitempty"`
	LastHopConnsKnown bool  `json:",omitempty"`
	// SyscR and SyscW are the read and write system calls of the proxy
	// processes during the run (/proc/PID/io); SyscKnown says they were
	// readable.
	SyscR     int64 `json:",omitempty"`
	SyscW     int64 `json:",omitempty"`
	SyscKnown bool  `json:",omitempty"`
}

// CPUPer10k is CPU seconds per 10,000 requests.
func (m Measurement) CPUPer10k() float64 {
	n := m.OK + m.Failed
	if n == 0 {
		return 0
	}
	return m.CPU.Seconds() / float64(n) * 10000
}

// CrossCheck is one external tool's figure for a scenario and target.
type CrossCheck struct {
	Scenario string
	Target   string
	Tool     string
	Command  string
	RPS      float64
	Failed   int64
	Err      string `json:",omitempty"`
}

// Profile records what --profile or --profile-target saved.
type Profile struct {
	// Target, Proxy and Load say what was profiled under which load
	// (--profile-target only).
	Target     string `json:",omitempty"`
	Proxy      string `json:",omitempty"`
	Load       string `json:",omitempty"`
	CPUPath    string
	AllocsPath string
	// AllocsPerRequest is Mallocs growth over the profiled requests; 0 when
	// the binary did not serve pprof.
	AllocsPerRequest float64
	Requests         int64
	Err              string `json:",omitempty"`
}
