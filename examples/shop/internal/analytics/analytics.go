package analytics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
)

// Aggregate bounds.
const (
	// minutesKept is how many per-minute buckets /stats reports and keeps.
	minutesKept = 10
	// maxLatencyUs is the largest order latency recorded (1 minute); longer
	// ones are clamped to it.
	maxLatencyUs = 60_000_000
)

// Stats is what GET /stats answers.
type Stats struct {
	OrdersTotal      int64            `json:"orders_total"`
	RevenueCents     int64            `json:"revenue_cents"`
	OrdersLastMinute int64            `json:"orders_last_minute"`
	PerMinute        []MinuteCount    `json:"orders_per_minute"`
	LatencyP50Ms     float64          `json:"order_latency_p50_ms"`
	LatencyP99Ms     float64          `json:"order_latency_p99_ms"`
	PaymentsVersions map[string]int64 `json:"payments_versions"`
}

// MinuteCount is the number of orders created in one minute.
type MinuteCount struct {
	Minute time.Time `json:"minute"`
	Orders int64     `json:"orders"`
}

// aggregator folds order events into Stats. It keeps everything in memory
// (including the set of order ids seen, which grows by one id per order:
// fine for a demo, not for a year of orders): on restart, the durable
// consumer resumes after the last acked event, so a restarted instance
// counts from then on.
type aggregator struct {
	now    func() time.Time
	tracer trace.Tracer
	logger *slog.Logger

	mu        sync.Mutex
	seen      map[string]struct{}
	total     int64
	revenue   int64
	perMinute map[int64]int64 // unix minute -> orders
	latency   *hdrhistogram.Histogram
	versions  map[string]int64

	ordersMetric  prometheus.Counter
	revenueMetric prometheus.Counter
}

func newAggregator(now func() time.Time, reg prometheus.Registerer, logger *slog.Logger) *aggregator {
	a := &aggregator{
		now: now, logger: logger,
		tracer:        otel.Tracer("outrigger/examples/shop/analytics"),
		seen:          map[string]struct{}{},
		perMinute:     map[int64]int64{},
		latency:       hdrhistogram.New(1, maxLatencyUs, 3),
		versions:      map[string]int64{},
		ordersMetric:  prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_orders_total", Help: "Order events counted."}),
		revenueMetric: prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_revenue_cents_total", Help: "Revenue of the counted orders, in cents."}),
	}
	reg.MustRegister(a.ordersMetric, a.revenueMetric)
	return a
}

// handle counts one order event; a redelivered event is counted once.
func (a *aggregator) handle(ctx context.Context, o events.Order) error {
	_, span := a.tracer.Start(ctx, "analytics.record", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("order_id", o.OrderID)))
	defer span.End()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.seen[o.OrderID]; dup {
		return nil
	}
	a.seen[o.OrderID] = struct{}{}
	a.total++
	a.revenue += o.AmountCents
	minute := time.UnixMilli(o.CreatedUnixMs).Unix() / 60
	a.perMinute[minute]++
	for m := range a.perMinute {
		if m <= a.now().Unix()/60-minutesKept {
			delete(a.perMinute, m)
		}
	}
	us := int64(o.LatencyMs * 1000)
	_ = a.latency.RecordValue(min(max(us, 1), maxLatencyUs))
	a.versions[o.PaymentsVersion]++
	a.ordersMetric.Inc()
	a.revenueMetric.Add(float64(o.AmountCents))
	return nil
}

func (a *aggregator) stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	s := Stats{
		OrdersTotal: a.total, RevenueCents: a.revenue,
		PaymentsVersions: make(map[string]int64, len(a.versions)),
		PerMinute:        []MinuteCount{},
	}
	cur := now.Unix() / 60
	for m, n := range a.perMinute {
		if m > cur-minutesKept && m <= cur {
			s.PerMinute = append(s.PerMinute, MinuteCount{Minute: time.Unix(m*60, 0).UTC(), Orders: n})
		}
	}
	sort.Slice(s.PerMinute, func(i, j int) bool { return s.PerMinute[i].Minute.Before(s.PerMinute[j].Minute) })
	s.OrdersLastMinute = a.perMinute[cur]
	if a.latency.TotalCount() > 0 {
		s.LatencyP50Ms = float64(a.latency.ValueAtQuantile(50)) / 1000
		s.LatencyP99Ms = float64(a.latency.ValueAtQuantile(99)) / 1000
	}
	for v, n := range a.versions {
		s.PaymentsVersions[v] = n
	}
	return s
}

func (a *aggregator) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.stats())
	})
}
