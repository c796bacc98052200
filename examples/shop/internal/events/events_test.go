package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
)

func TestPublishConsume(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	url := shoptest.StartNATS(t).ClientURL()
	ctx := context.Background()
	nc, js, err := Connect(ctx, url, "events-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// An undecodable message first: terminated, never handed over.
	if _, err := js.Publish(ctx, OrderCreated, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	pctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	for _, id := range []string{"a", "a", "b"} { // "a" twice: stored once (Nats-Msg-Id)
		if err := Publish(pctx, js, Order{OrderID: id, AmountCents: 5}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu    sync.Mutex
		got   []string
		tries = map[string]int{}
	)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Consume(cctx, js, "test", func(ctx context.Context, o Order) error {
			mu.Lock()
			defer mu.Unlock()
			tries[o.OrderID]++
			if o.OrderID == "b" && tries["b"] == 1 {
				return errors.New("not yet") // redelivered
			}
			if sc := trace.SpanContextFromContext(ctx); sc.TraceID() != traceID {
				t.Errorf("order %s: trace id %s, want %s", o.OrderID, sc.TraceID(), traceID)
			}
			got = append(got, o.OrderID)
			return nil
		}, slog.New(slog.DiscardHandler))
	}()
	shoptest.Eventually(t, 10*time.Second, "both orders handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "a,b" || tries["a"] != 1 || tries["b"] != 2 {
		t.Fatalf("handled %q after tries %v; want a once, b after one redelivery", got, tries)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	if _, _, err := Connect(short, "nats://"+shoptest.FreeAddr(t), "x", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "nats nats://") {
		t.Errorf("Connect to nothing = %v, want an error naming the URL once ctx ends", err)
	}
	url := shoptest.StartNATS(t).ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// No stream yet: the consumer cannot be created.
	if err := Consume(ctx, js, "x", nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "consumer x on ORDERS") {
		t.Errorf("Consume without the stream = %v", err)
	}
	if err := Publish(ctx, js, Order{OrderID: "a"}); err == nil || !strings.Contains(err.Error(), "order a") {
		t.Errorf("Publish without the stream = %v", err)
	}
}

// TestConnectWaitsForTheServer: a service started before NATS connects
// once the server comes up.
func TestConnectWaitsForTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, _, err := Connect(ctx, fmt.Sprintf("nats://127.0.0.1:%d", port), "late", slog.New(slog.DiscardHandler))
		done <- result{nc, err}
	}()
	shoptest.StartNATSOn(t, port)
	r := <-done
	if r.err != nil {
		t.Fatalf("Connect = %v, want it to wait for the server", r.err)
	}
	r.nc.Close()
}
