package fault

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Response flags, as Envoy's access log spells them.
const (
	FlagDelayInjected = "DI"
	FlagFaultInjected = "FI"
)

// Request headers a client uses to ask for faults (header_delay,
// header_abort) and to name itself (downstream_nodes), in http.Header's
// canonical form.
const (
	HeaderDelayRequest           = "X-Envoy-Fault-Delay-Request"            // milliseconds
	HeaderDelayRequestPercentage = "X-Envoy-Fault-Delay-Request-Percentage" // numerator
	HeaderAbortRequest           = "X-Envoy-Fault-Abort-Request"            // HTTP status
	HeaderAbortGRPCRequest       = "X-Envoy-Fault-Abort-Grpc-Request"       // gRPC status
	HeaderAbortRequestPercentage = "X-Envoy-Fault-Abort-Request-Percentage" // numerator
	HeaderDownstreamServiceNode  = "X-Envoy-Downstream-Service-Node"
)

// Policy is a validated Config made ready for the request path. One Policy
// can serve several filters; a route's override is a Policy too.
type Policy struct {
	inert   bool // neither delay nor abort: nothing to do
	delay   *Delay
	abort   *abortPolicy
	cluster string
	headers router.HeaderMatchers
	nodes   map[string]struct{} // nil: any downstream
	limited bool
	max     int64
}

// Compile validates cfg and prepares it for Apply. Errors are
// *ConfigError.
func Compile(cfg *Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{cluster: cfg.UpstreamCluster, inert: cfg.Delay == nil && cfg.Abort == nil}
	if cfg.Delay != nil {
		d := *cfg.Delay
		p.delay = &d
	}
	if cfg.Abort != nil {
		p.abort = newAbortPolicy(cfg.Abort)
	}
	var err error
	if p.headers, err = compileHeaders(cfg.Headers); err != nil {
		return nil, err
	}
	if len(cfg.DownstreamNodes) > 0 {
		p.nodes = make(map[string]struct{}, len(cfg.DownstreamNodes))
		for _, n := range cfg.DownstreamNodes {
			p.nodes[n] = struct{}{}
		}
	}
	if cfg.MaxActiveFaults != nil {
		p.limited, p.max = true, int64(*cfg.MaxActiveFaults)
	}
	return p, nil
}

// Filter is one configured fault filter: its policy, its counters and the
// active-fault gauge that max_active_faults is checked against. Safe for
// concurrent use.
type Filter struct {
	policy *Policy
	rand   func() uint64 // uniform; tests inject a seeded source
	stats  counters
}

type counters struct {
	delays   atomic.Uint64
	aborts   atomic.Uint64
	overflow atomic.Uint64
	active   atomic.Int64
}

// New builds a filter from cfg, which should have passed Validate (as
// faultxds.FromProto's output has). A Config that does not validate is
// not used: the filter then injects nothing.
func New(cfg *Config) *Filter {
	p, err := Compile(cfg)
	if err != nil {
		p = &Policy{inert: true}
	}
	return &Filter{policy: p, rand: rand.Uint64}
}

// Outcome is what Apply did to a request.
type Outcome struct {
	// Delayed is the delay injected (0: none). When ClientGone is false
	// the whole delay has passed.
	Delayed time.Duration
	// Aborted: the fault answered the request (Status, GRPCStatus); the
	// caller must not forward it.
	Aborted bool
	// ClientGone: the client left during the delay. Nothing was written;
	// the caller must not forward the request and logs Status (499).
	ClientGone bool
	// Status is the HTTP status written (200 for a gRPC request's
	// trailers-only reply), 499 when ClientGone, 0 when the request goes
	// on.
	Status int
	// GRPCStatus is the grpc-status written to a gRPC request ("" when not
	// gRPC or not aborted).
	GRPCStatus string
	// Flag is the access-log response flags: "DI", "FI", "DI,FI" or
	// "DI,DC"; "" when no fault was injected.
	Flag string
}

// Done reports whether the caller must stop: the request was answered or
// its client is gone.
func (o *Outcome) Done() bool { return o.Aborted || o.ClientGone }

// Apply runs the filter's own policy on a request routed to cluster (the
// cluster the route picked, after any weighted split). See ApplyPolicy.
func (f *Filter) Apply(w http.ResponseWriter, r *http.Request, cluster string) Outcome {
	return f.ApplyPolicy(w, r, cluster, nil)
}

// ApplyPolicy is Apply with p, a route's override, in place of the
// filter's own policy (nil: the filter's own); the filter's counters and
// active-fault gauge are used either way, as Envoy does.
//
// Envoy's order: the request must be routed to UpstreamCluster, come from
// one of DownstreamNodes and match every header matcher. Then a delay is
// injected if it hits (waiting on r.Context()), and afterwards an abort if
// it hits, each only while max_active_faults allows. An abort writes the
// reply itself. A request no fault hits costs no allocation.
func (f *Filter) ApplyPolicy(w http.ResponseWriter, r *http.Request, cluster string, p *Policy) Outcome {
	if p == nil {
		p = f.policy
	}
	if p.inert || !p.matches(r, cluster) {
		return Outcome{}
	}
	var out Outcome
	active := false
	if d := f.delayFor(p, r); d > 0 && f.acquire(p, &active) {
		f.stats.delays.Add(1)
		out.Delayed, out.Flag = d, FlagDelayInjected
		if !sleep(r.Context(), d) {
			f.release(&active)
			out.ClientGone = true
			out.Status = forward.StatusClientClosed
			out.Flag = FlagDelayInjected + "," + forward.FlagDownstreamTerm
			return out
		}
	}
	// After a delay the request is still an active fault, so the abort
	// needs no second slot (Envoy's tryIncActiveFaults).
	if hs, gs, ok := f.abortFor(p, r); ok && f.acquire(p, &active) {
		f.stats.aborts.Add(1)
		out.Aborted = true
		out.Status, out.GRPCStatus = p.abort.write(w, r, hs, gs)
		if out.Flag == "" {
			out.Flag = FlagFaultInjected
		} else {
			out.Flag = FlagDelayInjected + "," + FlagFaultInjected
		}
	}
	f.release(&active)
	return out
}

// matches applies the request filters: cluster, downstream node, headers.
func (p *Policy) matches(r *http.Request, cluster string) bool {
	if p.cluster != "" && cluster != p.cluster {
		return false
	}
	if p.nodes != nil {
		vs := r.Header[HeaderDownstreamServiceNode]
		if len(vs) == 0 {
			return false
		}
		if _, ok := p.nodes[vs[0]]; !ok {
			return false
		}
	}
	return p.headers.MatchAll(r)
}

// delayFor is the delay to inject, 0 for none.
func (f *Filter) delayFor(p *Policy, r *http.Request) time.Duration {
	d := p.delay
	if d == nil {
		return 0
	}
	if !d.FromHeader {
		if !f.hit(d.Percent) {
			return 0
		}
		return d.Fixed
	}
	// Only the first value counts: the header is untrusted (Envoy).
	vs := r.Header[HeaderDelayRequest]
	if len(vs) == 0 {
		return 0
	}
	ms, ok := parseUint64(vs[0])
	if !ok || !f.hit(headerPercent(r, HeaderDelayRequestPercentage, d.Percent)) {
		return 0
	}
	if ms > math.MaxInt64/uint64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// noGRPC marks an abort whose gRPC status follows from its HTTP status.
const noGRPC = -1

// abortFor says whether to abort, with which HTTP status and which gRPC
// status (noGRPC: derived from the HTTP status for gRPC requests).
func (f *Filter) abortFor(p *Policy, r *http.Request) (httpStatus, grpcStatus int, ok bool) {
	a := p.abort
	if a == nil {
		return 0, 0, false
	}
	switch a.kind {
	case AbortHTTP:
		return a.httpStatus, noGRPC, f.hit(a.percent)
	case AbortGRPC:
		return http.StatusOK, a.grpcStatus, f.hit(a.percent)
	}
	// AbortHeader: an HTTP status wins over a gRPC one; a request that
	// names neither (validly) is not aborted.
	hs, gs := 0, noGRPC
	if vs := r.Header[HeaderAbortRequest]; len(vs) > 0 {
		if n, ok := parseUint64(vs[0]); ok && n >= 200 && n < 600 {
			hs = int(n)
		}
	}
	if hs == 0 {
		if vs := r.Header[HeaderAbortGRPCRequest]; len(vs) > 0 {
			if n, ok := parseUint64(vs[0]); ok && n <= 16 {
				hs, gs = http.StatusOK, int(n)
			}
		}
	}
	if hs == 0 || !f.hit(headerPercent(r, HeaderAbortRequestPercentage, a.percent)) {
		return 0, 0, false
	}
	return hs, gs, true
}

// headerPercent is Envoy's HeaderPercentageProvider: the header's
// numerator, capped at the configured one, over the configured
// denominator; the configured fraction when the header is absent or not a
// uint32.
func headerPercent(r *http.Request, name string, def Fraction) Fraction {
	vs := r.Header[name]
	if len(vs) == 0 {
		return def
	}
	n, ok := parseUint64(vs[0])
	if !ok || n > math.MaxUint32 {
		return def
	}
	return Fraction{Numerator: min(uint32(n), def.Numerator), Denominator: def.Denominator}
}

// hit draws against a fraction as Envoy does: random % denominator <
// numerator.
func (f *Filter) hit(p Fraction) bool {
	switch {
	case p.Numerator == 0 || p.Denominator == 0:
		return false
	case p.Numerator >= p.Denominator:
		return true
	}
	return f.rand()%uint64(p.Denominator) < uint64(p.Numerator)
}

// acquire counts the request as an active fault, once, unless the policy's
// max_active_faults is reached (then it counts an overflow and refuses).
func (f *Filter) acquire(p *Policy, active *bool) bool {
	if *active {
		return true
	}
	if !p.limited {
		f.stats.active.Add(1)
		*active = true
		return true
	}
	for {
		n := f.stats.active.Load()
		if n >= p.max {
			f.stats.overflow.Add(1)
			return false
		}
		if f.stats.active.CompareAndSwap(n, n+1) {
			*active = true
			return true
		}
	}
}

func (f *Filter) release(active *bool) {
	if *active {
		f.stats.active.Add(-1)
		*active = false
	}
}

// sleep waits d unless ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Stats are the filter's counters at one moment, named after Envoy's
// http.<stat_prefix>.fault.* statistics.
type Stats struct {
	DelaysInjected uint64 // fault.delays_injected
	AbortsInjected uint64 // fault.aborts_injected
	ActiveFaults   int64  // fault.active_faults (gauge)
	FaultsOverflow uint64 // fault.faults_overflow: refused by max_active_faults
}

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	return Stats{
		DelaysInjected: f.stats.delays.Load(),
		AbortsInjected: f.stats.aborts.Load(),
		ActiveFaults:   f.stats.active.Load(),
		FaultsOverflow: f.stats.overflow.Load(),
	}
}

// Named returns the stats under Envoy's names, without the
// "http.<stat_prefix>." the connection manager puts in front.
func (s Stats) Named() map[string]uint64 {
	return map[string]uint64{
		"fault.delays_injected": s.DelaysInjected,
		"fault.aborts_injected": s.AbortsInjected,
		"fault.active_faults":   uint64(max(s.ActiveFaults, 0)),
		"fault.faults_overflow": s.FaultsOverflow,
	}
}
