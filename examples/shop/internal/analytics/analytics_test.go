package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
)

func TestAggregates(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 30, 30, 0, time.UTC)
	a := newAggregator(func() time.Time { return now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	var orders []events.Order
	// 100 orders in the current minute: latencies 1..100 ms, v1 and v2.
	for i := 1; i <= 100; i++ {
		v := "v1"
		if i%4 == 0 {
			v = "v2"
		}
		orders = append(orders, events.Order{OrderID: fmt.Sprintf("cur%d", i), AmountCents: 100, CreatedUnixMs: at(-10 * time.Second), LatencyMs: float64(i), PaymentsVersion: v})
	}
	orders = append(orders,
		events.Order{OrderID: "prev", AmountCents: 50, CreatedUnixMs: at(-time.Minute), LatencyMs: 1, PaymentsVersion: "v1"},
		events.Order{OrderID: "ancient", AmountCents: 50, CreatedUnixMs: at(-time.Hour), LatencyMs: 1, PaymentsVersion: "v1"},
	)
	for _, o := range orders {
		if err := a.handle(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.handle(ctx, orders[0]); err != nil { // a redelivery
		t.Fatal(err)
	}
	s := a.stats()
	if s.OrdersTotal != 102 || s.RevenueCents != 100*100+100 {
		t.Errorf("total %d revenue %d, want 102 and %d", s.OrdersTotal, s.RevenueCents, 100*100+100)
	}
	if s.OrdersLastMinute != 100 {
		t.Errorf("orders this minute = %d, want 100", s.OrdersLastMinute)
	}
	if len(s.PerMinute) != 2 || s.PerMinute[0].Orders != 1 || s.PerMinute[1].Orders != 100 {
		t.Errorf("per minute = %+v, want [1 100] (the hour-old order dropped)", s.PerMinute)
	}
	if s.LatencyP99Ms < 98 || s.LatencyP99Ms > 100.1 || s.LatencyP50Ms < 49 || s.LatencyP50Ms > 51 {
		t.Errorf("latency p50 %v p99 %v, want about 50 and 99", s.LatencyP50Ms, s.LatencyP99Ms)
	}
	if s.PaymentsVersions["v1"] != 77 || s.PaymentsVersions["v2"] != 25 {
		t.Errorf("versions = %v, want v1 77, v2 25", s.PaymentsVersions)
	}
	if got := testutil.ToFloat64(a.ordersMetric); got != 102 {
		t.Errorf("analytics_orders_total = %v", got)
	}
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"empty durable", []string{"-durable", ""}, "-durable"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"no nats", []string{"-nats-url", "nats://" + shoptest.FreeAddr(t)}, "nats"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Bounded: Run waits for a NATS server that is not up yet.
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			err := Run(ctx, tt.args, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}
