// The shop end to end, in one process: real Redis, a real embedded NATS
// JetStream server, real SQLite files, and every service started through
// its Run (flags and all) on loopback addresses. No mesh: the services talk
// to the addresses they are given.
package shop_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/analytics"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/notifications"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/orders"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/payments"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/users"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// running is one service started by start.
type running struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

// start runs a service's Run until stop or the end of the test.
func start(t *testing.T, name string, run func(context.Context, []string, *slog.Logger) error, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{name: name, cancel: cancel, done: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("service", name)
	go func() { r.done <- run(ctx, args, logger) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the service as SIGTERM would and checks it returned cleanly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("%s: Run = %v", r.name, err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop", r.name)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	shoptest.Eventually(t, 15*time.Second, addr+"/healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type notificationList struct {
	Count         int `json:"count"`
	Notifications []struct {
		OrderID string `json:"order_id"`
		TraceID string `json:"trace_id"`
	} `json:"notifications"`
}

func TestShop(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); _ = tp.Shutdown(context.Background()) })
	otel.SetTextMapPropagator(propagation.TraceContext{})

	redis := shoptest.StartRedis(t)
	natsURL := shoptest.StartNATS(t).ClientURL()
	dir := t.TempDir()
	addr := map[string]string{}
	for _, n := range []string{"users", "payments", "payments-admin", "orders", "orders-admin", "notifications", "analytics"} {
		addr[n] = shoptest.FreeAddr(t)
	}
	paymentsDB := filepath.Join(dir, "payments.db")
	start(t, "users", users.Run, "-addr", addr["users"], "-redis", redis.Addr, "-db", filepath.Join(dir, "users.db"))
	start(t, "payments", payments.Run, "-addr", addr["payments"], "-admin-addr", addr["payments-admin"], "-db", paymentsDB, "-version", "v2")
	start(t, "orders", orders.Run, "-addr", addr["orders"], "-admin-addr", addr["orders-admin"], "-db", filepath.Join(dir, "orders.db"),
		"-payments-addr", addr["payments"], "-users-url", "http://"+addr["users"], "-nats-url", natsURL)
	// One JetStream client at a time: nats-server v2.15.2 trips the race
	// detector when one client updates the stream while another creates a
	// consumer (examples/shop/mesh_test.go waits the same way).
	for _, n := range []string{"users", "payments-admin", "orders-admin"} {
		waitHealthy(t, addr[n])
	}
	notifArgs := []string{"-addr", addr["notifications"], "-db", filepath.Join(dir, "notifications.db"), "-nats-url", natsURL}
	notif := start(t, "notifications", notifications.Run, notifArgs...)
	waitHealthy(t, addr["notifications"])
	start(t, "analytics", analytics.Run, "-addr", addr["analytics"], "-nats-url", natsURL)
	waitHealthy(t, addr["analytics"])

	// A user, through the HTTP API.
	resp, err := http.Post("http://"+addr["users"]+"/users", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	var user struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&user)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || user.ID == "" {
		t.Fatalf("create user: %s %+v", resp.Status, user)
	}

	cc, err := grpc.NewClient(addr["orders"], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := shoppb.NewOrdersClient(cc)

	// An order under a root span of our own: its trace id must come out of
	// the queue on the other side.
	ctx, root := tp.Tracer("shop-test").Start(context.Background(), "checkout")
	traceID := root.SpanContext().TraceID().String()
	req := &shoppb.CreateOrderRequest{RequestId: "order-a", UserId: user.ID, Item: "tea", AmountCents: 1250}
	first, err := client.CreateOrder(ctx, req)
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	root.End()
	if first.Status != "paid" || first.PaymentsVersion != "v2" || first.ChargeId == "" {
		t.Fatalf("order = %+v, want paid by v2", first)
	}
	// Retried with the same request id: the same order, charged once.
	again, err := client.CreateOrder(context.Background(), req)
	if err != nil || again.ChargeId != first.ChargeId {
		t.Fatalf("retried CreateOrder = %+v, %v; want charge %s again", again, err, first.ChargeId)
	}
	if n := countCharges(t, paymentsDB); n != 1 {
		t.Fatalf("charges stored = %d, want 1", n)
	}
	// An unknown user is refused before any charge.
	if _, err := client.CreateOrder(context.Background(), &shoppb.CreateOrderRequest{UserId: "nobody", Item: "tea", AmountCents: 100}); status.Code(err) != codes.NotFound {
		t.Fatalf("order for an unknown user: %v, want NOT_FOUND", err)
	}

	var list notificationList
	shoptest.Eventually(t, 10*time.Second, "the notification", func() bool {
		getJSON(t, "http://"+addr["notifications"]+"/notifications", &list)
		return list.Count == 1
	})
	if got := list.Notifications[0]; got.OrderID != "order-a" || got.TraceID != traceID {
		t.Fatalf("notification = %+v, want order-a in trace %s", got, traceID)
	}
	var stats analytics.Stats
	shoptest.Eventually(t, 10*time.Second, "analytics to count the order", func() bool {
		getJSON(t, "http://"+addr["analytics"]+"/stats", &stats)
		return stats.OrdersTotal == 1
	})
	if stats.RevenueCents != 1250 || stats.OrdersLastMinute != 1 || stats.PaymentsVersions["v2"] != 1 || stats.LatencyP99Ms <= 0 {
		t.Fatalf("stats = %+v", stats)
	}

	// One trace from the client through orders, users, payments and across
	// the queue to notifications and analytics.
	want := []string{"checkout", "outrigger.shop.v1.Orders/CreateOrder", "users.Get", "outrigger.shop.v1.Payments/Charge", "notifications.send", "analytics.record"}
	var inTrace []string
	shoptest.Eventually(t, 10*time.Second, "spans of the trace", func() bool {
		inTrace = inTrace[:0]
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == traceID {
				inTrace = append(inTrace, s.Name())
			}
		}
		for _, w := range want {
			if !slices.Contains(inTrace, w) {
				return false
			}
		}
		return true
	})
	t.Logf("trace %s: %q", traceID, inTrace)

	// notifications stops; orders go on; the restarted consumer catches up
	// on exactly what it missed.
	notif.stop(t)
	for i := range 3 {
		if _, err := client.CreateOrder(context.Background(), &shoppb.CreateOrderRequest{RequestId: fmt.Sprintf("order-b%d", i), UserId: user.ID, Item: "cake", AmountCents: 400}); err != nil {
			t.Fatalf("CreateOrder while notifications is down: %v", err)
		}
	}
	start(t, "notifications", notifications.Run, notifArgs...)
	waitHealthy(t, addr["notifications"])
	shoptest.Eventually(t, 10*time.Second, "the missed notifications", func() bool {
		getJSON(t, "http://"+addr["notifications"]+"/notifications", &list)
		return list.Count >= 4
	})
	var ids []string
	for _, n := range list.Notifications {
		ids = append(ids, n.OrderID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"order-a", "order-b0", "order-b1", "order-b2"}) {
		t.Fatalf("notified orders = %q", ids)
	}
	shoptest.Eventually(t, 10*time.Second, "analytics to count 4 orders", func() bool {
		getJSON(t, "http://"+addr["analytics"]+"/stats", &stats)
		return stats.OrdersTotal == 4
	})
	if stats.RevenueCents != 1250+3*400 {
		t.Fatalf("revenue = %d, want %d", stats.RevenueCents, 1250+3*400)
	}
	// orders' /metrics shows the work.
	var metrics bytes.Buffer
	resp, err = http.Get("http://" + addr["orders-admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`orders_created_total{result="paid"} 4`, `orders_created_total{result="replayed"} 1`, `orders_created_total{result="user_error"} 1`, "orders_unpublished 0"} {
		if !strings.Contains(metrics.String(), w) {
			t.Errorf("orders /metrics lacks %q", w)
		}
	}
}

func countCharges(t *testing.T, path string) int {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM charges`).Scan(&n); err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return n
}
