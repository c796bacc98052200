package cpscale

import "time"

// Memory is the median of a few readings of the control plane.
type Memory struct {
	RSS float64 `json:"rss_bytes"`
	// StackInuse is goroutine stacks (not heap): the median of the
	// readings, or the reading right after the GC cycle a reading waited
	// for. HeapInuse (go_memstats_heap_inuse_bytes) counts garbage not yet
	// collected too. LiveHeap is what a GC cycle marked live (whole MB):
	// the first cycle that started after the phase (LiveFresh), else the
	// last one before it, which may have run mid-work. LiveGC numbers it.
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	LiveHeap   float64 `json:"live_heap_bytes"`
	LiveGC     int     `json:"live_gc"`
	LiveFresh  bool    `json:"live_fresh"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
	Samples    int     `json:"samples"`
}

// CPU is processor time spent in one phase.
type CPU struct {
	ControlPlane time.Duration `json:"control_plane_ns"`
	Consul       time.Duration `json:"consul_ns"`
	Bench        time.Duration `json:"bench_ns"`
}

// ChangeResult is one measured change.
type ChangeResult struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// Streams were running when it was written; Got showed it.
	Streams int `json:"streams"`
	Got     int `json:"got"`
	// Write is how long the Consul write took to return.
	Write time.Duration `json:"write_ns"`
	// Latency is from the write returning to each stream's ACK of the
	// response that carried the change.
	Latency Latency `json:"latency"`
	CPU     CPU     `json:"cpu"`
	// Translations are the control plane's mesh translations in the
	// change's window.
	Translations []Translation `json:"translations"`
	Error        string        `json:"error,omitempty"`

	latencies []time.Duration
}

// Result is one case.
type Result struct {
	Proxies      int    `json:"proxies"`
	Services     int    `json:"services"`
	Upstreams    int    `json:"upstreams"`
	HubInstances int    `json:"hub_instances"`
	Layout       string `json:"layout"`
	Mode         string `json:"mode"`
	InProcess    bool   `json:"in_process,omitempty"`
	Conns        int    `json:"connections"`
	// Registered counts the connect-proxies in Consul; Groups the control
	// plane's distinct snapshots.
	Registered int     `json:"registered_proxies"`
	Groups     float64 `json:"snapshot_groups"`
	// RegisterTime is how long registering the mesh in Consul took;
	// ReadyTime from starting outrigger-cp to its first translated mesh
	// with every proxy; SyncTime from the first stream to the last synced.
	RegisterTime time.Duration `json:"register_ns"`
	ReadyTime    time.Duration `json:"ready_ns"`
	SyncTime     time.Duration `json:"sync_ns"`
	SyncCPU      CPU           `json:"sync_cpu"`
	Synced       int           `json:"synced"`
	// Empty is the control plane on an empty mesh (a separate process,
	// zero when skipped); Baseline with the mesh translated but no stream;
	// After with every stream synced.
	Empty    Memory `json:"empty"`
	Baseline Memory `json:"baseline"`
	After    Memory `json:"after"`
	// InitialTranslation is the control plane's first translation of the
	// whole mesh.
	InitialTranslation *Translation    `json:"initial_translation,omitempty"`
	NACKs              float64         `json:"nacks"`
	StreamErrors       map[string]int  `json:"stream_errors,omitempty"`
	Changes            []*ChangeResult `json:"changes"`
	All                Pooled          `json:"all_changes"`
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end
	// of the case: other work on the machine shows in the latencies.
	LoadAvg [2]float64 `json:"load_avg"`
	// Profiles are the heap profiles written (in-process only).
	Profiles []string      `json:"profiles,omitempty"`
	Error    string        `json:"error,omitempty"`
	Took     time.Duration `json:"took_ns"`
}

// PerProxyRSS is the control plane's RSS growth per connected proxy.
func (r *Result) PerProxyRSS() float64 { return perProxy(r.After.RSS, r.Baseline.RSS, r.Synced) }

// PerProxyHeap is the heap-in-use growth per connected proxy.
func (r *Result) PerProxyHeap() float64 {
	return perProxy(r.After.HeapInuse, r.Baseline.HeapInuse, r.Synced)
}

// PerProxyLive is the growth of the live heap plus goroutine stacks per
// connected proxy: what the streams retain. ok is false unless both live
// heaps were marked after their phase.
func (r *Result) PerProxyLive() (v float64, ok bool) {
	return perProxy(r.After.LiveHeap+r.After.StackInuse, r.Baseline.LiveHeap+r.Baseline.StackInuse, r.Synced),
		r.After.LiveFresh && r.Baseline.LiveFresh
}

// PerProxyTotalRSS is the RSS over an empty control plane per proxy: its
// share of the translated configuration as well as its connection.
func (r *Result) PerProxyTotalRSS() float64 {
	if r.Empty.Samples == 0 {
		return 0
	}
	return perProxy(r.After.RSS, r.Empty.RSS, r.Synced)
}

func perProxy(after, before float64, n int) float64 {
	if n <= 0 || after == 0 {
		return 0
	}
	return (after - before) / float64(n)
}

// AllChanges is every stream's latency over every change, pooled, and how
// many ACKs came of how many expected.
func (r *Result) AllChanges() (lat Latency, got, want int) {
	return r.All.Latency, r.All.Got, r.All.Want
}

// pool fills r.All from the changes' latencies.
func (r *Result) pool() {
	var all []time.Duration
	r.All = Pooled{}
	for _, c := range r.Changes {
		all = append(all, c.latencies...)
		r.All.Got += c.Got
		r.All.Want += c.Streams
	}
	r.All.Latency = summarize(all)
}

// Pooled summarizes every change of a case.
type Pooled struct {
	Latency Latency `json:"latency"`
	Got     int     `json:"got"`
	Want    int     `json:"want"`
}
