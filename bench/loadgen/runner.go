package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Mode is how load is offered.
type Mode string

const (
	// OpenLoop sends at a fixed rate whatever the target does; latency is
	// measured from each request's scheduled time.
	OpenLoop Mode = "open"
	// ClosedLoop keeps Workers requests in flight back to back: the target's
	// maximum throughput at that concurrency.
	ClosedLoop Mode = "closed"
)

// Options bound one run. Every run is bounded by Duration; MaxRequests caps
// it further when positive.
type Options struct {
	Mode        Mode
	Rate        float64 // open loop: requests per second
	Duration    time.Duration
	MaxRequests int64
	// Workers is the concurrency: requests in flight at most. For HTTP/1.1
	// it is also the number of connections.
	Workers int
}

func (o Options) validate() error {
	switch o.Mode {
	case OpenLoop, ClosedLoop:
	default:
		return fmt.Errorf("loadgen: unknown mode %q", o.Mode)
	}
	if o.Duration <= 0 {
		return fmt.Errorf("loadgen: duration must be positive, got %v", o.Duration)
	}
	if o.Workers < 1 {
		return fmt.Errorf("loadgen: workers must be at least 1, got %d", o.Workers)
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Mode    Mode
	Offered float64 // open loop: the scheduled rate
	// Scheduled is the planned request count (open loop only).
	Scheduled int64
	OK        int64
	Errors    int64
	// Unsent counts open-loop requests never sent because every worker was
	// still busy when the run's hard deadline came: the generator or the
	// target could not keep the schedule. They count as errors in Failed().
	Unsent int64
	// ErrorKinds counts errors by message (a few distinct kinds, then "other").
	ErrorKinds map[string]int64
	Elapsed    time.Duration
	// Latency holds successful requests, in ns: from the scheduled time in
	// open loop, from the actual send in closed loop.
	Latency *hdrhistogram.Histogram
	// SendLag is how late the generator sent each open-loop request (ns);
	// a high SendLag with a low Latency on direct means the generator, not
	// the target, is the limit.
	SendLag *hdrhistogram.Histogram
	// Clamped counts latencies outside the histogram's 1ns–60s range.
	Clamped int64
}

// Throughput is successful requests per second of wall time.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Failed is every request that did not succeed, including unsent ones.
func (r *Result) Failed() int64 { return r.Errors + r.Unsent }

const maxErrorKinds = 8

type workerStats struct {
	ok, errs int64
	kinds    map[string]int64
}

func (w *workerStats) fail(err error) {
	w.errs++
	if w.kinds == nil {
		w.kinds = make(map[string]int64)
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	if _, ok := w.kinds[msg]; !ok && len(w.kinds) >= maxErrorKinds {
		msg = "other"
	}
	w.kinds[msg]++
}

// Run drives load from client at its target according to opts.
func Run(ctx context.Context, client Client, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	sessions := make([]Session, opts.Workers)
	for i := range sessions {
		s, err := client.NewSession()
		if err != nil {
			closeSessions(sessions[:i])
			return nil, fmt.Errorf("loadgen: session %d: %w", i, err)
		}
		sessions[i] = s
	}
	defer closeSessions(sessions)

	shards := min(opts.Workers, 16)
	lat := NewRecorder(shards)
	lag := NewRecorder(shards)
	stats := make([]workerStats, opts.Workers)
	res := &Result{Mode: opts.Mode}

	var wg sync.WaitGroup
	start := time.Now()
	switch opts.Mode {
	case OpenLoop:
		// Start a little ahead so the workers are parked before slot 0.
		sched, err := NewSchedule(start.Add(time.Millisecond), opts.Rate, opts.Duration, opts.MaxRequests)
		if err != nil {
			return nil, err
		}
		res.Offered, res.Scheduled = sched.Rate(), sched.Count
		// The hard deadline: the last slot plus one request timeout's grace.
		runCtx, cancel := context.WithDeadline(ctx, sched.End().Add(2*time.Second))
		defer cancel()
		// Slots queue up when every worker is busy; the buffer holds a
		// second's worth so the pacer itself never waits on the workers.
		slots := make(chan int64, min(sched.Count, int64(max(opts.Rate, 1024))))
		var started atomic.Int64
		wg.Go(func() { pace(runCtx, sched, slots) })
		for w := range opts.Workers {
			wg.Go(func() {
				openWorker(runCtx, w, sessions[w], sched, slots, &started, lat, lag, &stats[w])
			})
		}
		wg.Wait()
		res.Unsent = sched.Count - started.Load()
	case ClosedLoop:
		runCtx, cancel := context.WithTimeout(ctx, opts.Duration)
		defer cancel()
		var budget atomic.Int64
		budget.Store(opts.MaxRequests)
		for w := range opts.Workers {
			wg.Go(func() {
				closedWorker(runCtx, w, sessions[w], opts.MaxRequests > 0, &budget, lat, &stats[w])
			})
		}
		wg.Wait()
	}
	res.Elapsed = time.Since(start)

	var clampedLat int64
	res.Latency, clampedLat = lat.Snapshot()
	res.Clamped = clampedLat
	if opts.Mode == OpenLoop {
		res.SendLag, _ = lag.Snapshot()
	}
	for i := range stats {
		res.OK += stats[i].ok
		res.Errors += stats[i].errs
		for k, v := range stats[i].kinds {
			if res.ErrorKinds == nil {
				res.ErrorKinds = make(map[string]int64)
			}
			if _, ok := res.ErrorKinds[k]; !ok && len(res.ErrorKinds) >= maxErrorKinds {
				k = "other"
			}
			res.ErrorKinds[k] += v
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	return res, nil
}

func openWorker(ctx context.Context, w int, s Session, sched Schedule, slots <-chan int64, started *atomic.Int64, lat, lag *Recorder, st *workerStats) {
	for {
		var i int64
		select {
		case <-ctx.Done():
			return
		case next, ok := <-slots:
			if !ok {
				return
			}
			i = next
		}
		at := sched.At(i)
		started.Add(1)
		sent := time.Now()
		lag.Record(w, sent.Sub(at))
		err := s.Do(ctx)
		if err != nil {
			if ctx.Err() != nil {
				err = errors.New("run deadline reached with the request in flight")
			}
			st.fail(err)
			continue
		}
		st.ok++
		lat.Record(w, time.Since(at))
	}
}

func closedWorker(ctx context.Context, w int, s Session, capped bool, budget *atomic.Int64, lat *Recorder, st *workerStats) {
	for ctx.Err() == nil {
		if capped && budget.Add(-1) < 0 {
			return
		}
		sent := time.Now()
		err := s.Do(ctx)
		if err != nil {
			// A request cut off by the end of the run is not the target's
			// fault. The dialer's deadline can fire a moment before ctx's
			// own timer, so compare with the clock too.
			if ctx.Err() != nil || pastDeadline(ctx) {
				return
			}
			st.fail(err)
			continue
		}
		st.ok++
		lat.Record(w, time.Since(sent))
	}
}

func closeSessions(ss []Session) {
	for _, s := range ss {
		if s != nil {
			_ = s.Close()
		}
	}
}

// ErrorSummary renders ErrorKinds sorted by count, for reports.
func (r *Result) ErrorSummary() string {
	if len(r.ErrorKinds) == 0 && r.Unsent == 0 {
		return ""
	}
	type kv struct {
		k string
		v int64
	}
	var kvs []kv
	for k, v := range r.ErrorKinds {
		kvs = append(kvs, kv{k, v})
	}
	if r.Unsent > 0 {
		kvs = append(kvs, kv{"unsent (schedule not kept)", r.Unsent})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	out := ""
	for i, e := range kvs {
		if i > 0 {
			out += "; "
		}
		out += fmt.Sprintf("%d× %s", e.v, e.k)
	}
	return out
}

func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
