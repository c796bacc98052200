package ratelimit

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Body is the body of a rate-limited reply, as Envoy's.
const Body = "local_rate_limited"

// FlagRateLimited is the access log's response flag for a rate-limited
// request.
const FlagRateLimited = "RL"

// Names of the x-ratelimit headers (draft-ietf-httpapi-ratelimit-headers-03).
const (
	HeaderLimit     = "X-Ratelimit-Limit"
	HeaderRemaining = "X-Ratelimit-Remaining"
	HeaderReset     = "X-Ratelimit-Reset"
)

// smallValues bounds the header values built in advance, so the pass path
// does not allocate them.
const smallValues = 1024

// Limiter is one Config in force: its bucket and its counters. The filter
// has one; each route whose typed_per_filter_config names the filter has
// its own, with its own bucket.
type Limiter struct {
	cfg    Config
	bucket *Bucket
	status int

	enabled, enforced, rateLimited, ok atomic.Uint64
	// key identifies the configuration (Config.key); live is, for a
	// per-route limiter, the limiter in force for the same key (itself, or
	// an equal one from an earlier build whose bucket it keeps using).
	key  string
	live atomic.Pointer[Limiter]

	limit  []string   // x-ratelimit-limit, shared (len == cap)
	counts [][]string // "0".."n" for remaining and reset values
}

// NewLimiter validates cfg and builds its limiter; field names the
// configuration in errors.
func NewLimiter(field string, cfg Config) (*Limiter, error) {
	if err := cfg.Validate(field); err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, status: cfg.Status, key: cfg.key()}
	if l.status == 0 {
		l.status = http.StatusTooManyRequests
	}
	if b := cfg.Bucket; b != nil {
		l.bucket = NewBucket(b.MaxTokens, b.TokensPerFill, b.FillInterval)
		if cfg.XRateLimitHeaders {
			l.limit = []string{strconv.FormatUint(uint64(b.MaxTokens), 10)}
			n := min(max(uint64(b.MaxTokens), uint64(b.FillInterval/time.Second)+1), smallValues)
			l.counts = make([][]string, n+1)
			for i := range l.counts {
				l.counts[i] = []string{strconv.Itoa(i)}
			}
		}
	}
	return l, nil
}

// Config is the limiter's configuration.
func (l *Limiter) Config() Config { return l.cfg }

// value is n as a header value, shared for small n.
func (l *Limiter) value(n uint64) []string {
	if n < uint64(len(l.counts)) {
		return l.counts[n]
	}
	return []string{strconv.FormatUint(n, 10)}
}

// decode checks one request against the limiter.
func (l *Limiter) decode(w http.ResponseWriter, r *http.Request) hcm.Verdict {
	if l.bucket == nil || l.cfg.Enabled == nil || !l.cfg.Enabled.sample() {
		return hcm.Verdict{}
	}
	l.enabled.Add(1)
	allowed, remaining := l.bucket.Take()
	if l.cfg.XRateLimitHeaders {
		h := w.Header()
		h[HeaderLimit] = l.limit
		h[HeaderRemaining] = l.value(uint64(remaining))
		reset := (l.bucket.ResetIn() + time.Second - 1) / time.Second
		h[HeaderReset] = l.value(uint64(reset))
	}
	if allowed {
		l.ok.Add(1)
		return hcm.Verdict{}
	}
	l.rateLimited.Add(1)
	if l.cfg.Enforced == nil || !l.cfg.Enforced.sample() {
		return hcm.Verdict{}
	}
	l.enforced.Add(1)
	if len(l.cfg.ResponseHeaders) > 0 {
		router.ApplyResponseEdits(w.Header(), &router.HeaderEdits{ResponseAdd: l.cfg.ResponseHeaders})
	}
	status, gs := forward.WriteReply(w, r, l.status, Body)
	return hcm.Verdict{Status: status, GRPCStatus: gs, Flag: FlagRateLimited}
}

// stats adds the limiter's counters to m under Envoy's names.
func (l *Limiter) stats(m map[string]uint64) {
	p := l.cfg.StatPrefix + ".http_local_rate_limit."
	m[p+"enabled"] += l.enabled.Load()
	m[p+"enforced"] += l.enforced.Load()
	m[p+"rate_limited"] += l.rateLimited.Load()
	m[p+"ok"] += l.ok.Load()
}

// Filter is the envoy.filters.http.local_ratelimit filter: an
// hcm.HTTPFilter and hcm.StatsReporter.
type Filter struct {
	name string
	base *Limiter

	mu     sync.Mutex
	routes map[string]*Limiter // per-route limiters in force, by key
}

// NewFilter builds the filter named name (its name in http_filters, under
// which routes give their own Limiter in typed_per_filter_config) with its
// own limiter.
func NewFilter(name string, base *Limiter) *Filter {
	return &Filter{name: name, base: base}
}

// Decode takes a token from the route's limiter, else the filter's, and
// answers 429 (or the configured status; gRPC: UNAVAILABLE) with body
// "local_rate_limited" when there is none and the limit is enforced.
func (f *Filter) Decode(w http.ResponseWriter, r *http.Request, in *hcm.FilterInput) hcm.Verdict {
	l := f.base
	if in != nil {
		if v, ok := in.PerRoute(f.name).(*Limiter); ok && v != nil {
			if l = v.live.Load(); l == nil {
				l = f.bind(v)
			}
		}
	}
	return l.decode(w, r)
}

// bind finds the limiter in force for a per-route limiter met for the
// first time: an equal one from an earlier route table (same place, same
// settings) keeps its bucket and counters; otherwise v itself.
func (f *Filter) bind(v *Limiter) *Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := v.live.Load(); l != nil {
		return l
	}
	l, ok := f.routes[v.key]
	if !ok {
		if f.routes == nil {
			f.routes = map[string]*Limiter{}
		}
		l = v
		f.routes[v.key] = v
	}
	v.live.Store(l)
	return l
}

// Stats returns <stat_prefix>.http_local_rate_limit.{enabled,enforced,
// rate_limited,ok} summed over the filter's limiter and the per-route
// limiters it has used.
func (f *Filter) Stats() map[string]uint64 {
	m := map[string]uint64{}
	f.base.stats(m)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.routes {
		l.stats(m)
	}
	return m
}
