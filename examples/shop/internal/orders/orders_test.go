package orders

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// stubPayments is a payments stand-in for the error paths of this package;
// examples/shop's TestShop runs orders against the real payments.
type stubPayments struct {
	shoppb.UnimplementedPaymentsServer
	mu   sync.Mutex
	err  error
	keys []string
}

func (p *stubPayments) Charge(_ context.Context, req *shoppb.ChargeRequest) (*shoppb.ChargeResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, req.GetIdempotencyKey())
	if p.err != nil {
		return nil, p.err
	}
	return &shoppb.ChargeResponse{ChargeId: "ch_" + req.GetOrderId(), Version: "v1", ServedBy: "v1"}, nil
}

func (p *stubPayments) set(err error) { p.mu.Lock(); p.err = err; p.mu.Unlock() }

type fixture struct {
	svc      *service
	payments *stubPayments
	js       jetstream.JetStream
}

func newFixture(t *testing.T, usersURL string) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "orders.db"), schema...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	nc, js, err := events.Connect(ctx, shoptest.StartNATS(t).ClientURL(), "orders-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := &stubPayments{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shoppb.RegisterPaymentsServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	svc := newService(db, shoppb.NewPaymentsClient(cc), js, usersURL, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	return &fixture{svc: svc, payments: p, js: js}
}

func order(id string) *shoppb.CreateOrderRequest {
	return &shoppb.CreateOrderRequest{RequestId: id, UserId: "u1", Item: "tea", AmountCents: 300}
}

func TestPaymentFailureThenRetry(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	f.payments.set(status.Error(codes.PermissionDenied, "denied by intention"))
	_, err := f.svc.CreateOrder(ctx, order("o1"))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "charge order o1: payments: denied by intention") {
		t.Fatalf("err = %v, want PERMISSION_DENIED naming the order and payments", err)
	}
	o, err := f.svc.GetOrder(ctx, &shoppb.GetOrderRequest{OrderId: "o1"})
	if err != nil || o.Status != statusFailed {
		t.Fatalf("order after failed payment = %+v, %v; want failed", o, err)
	}
	other := order("o1")
	other.AmountCents++
	if _, err := f.svc.CreateOrder(ctx, other); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("retry of a failed order with another amount = %v, want FAILED_PRECONDITION", err)
	}
	f.payments.set(nil)
	o, err = f.svc.CreateOrder(ctx, order("o1"))
	if err != nil || o.Status != statusPaid {
		t.Fatalf("retry = %+v, %v; want paid", o, err)
	}
	if want := []string{"order-o1", "order-o1"}; strings.Join(f.payments.keys, ",") != strings.Join(want, ",") {
		t.Fatalf("idempotency keys = %q, want %q", f.payments.keys, want)
	}
	if _, err := f.svc.CreateOrder(ctx, order("o1")); err != nil || len(f.payments.keys) != 2 {
		t.Fatalf("second retry of a paid order: %v, payments called %d times; want no new call", err, len(f.payments.keys))
	}
	if got := testutil.ToFloat64(f.svc.created.WithLabelValues(resultPaymentError)); got != 1 {
		t.Errorf("payment errors = %v, want 1", got)
	}
}

func TestCreateOrderRejects(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	if _, err := f.svc.CreateOrder(ctx, order("taken")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		req  *shoppb.CreateOrderRequest
		want codes.Code
	}{
		{"no user", &shoppb.CreateOrderRequest{Item: "tea", AmountCents: 1}, codes.InvalidArgument},
		{"no item", &shoppb.CreateOrderRequest{UserId: "u", AmountCents: 1}, codes.InvalidArgument},
		{"negative amount", &shoppb.CreateOrderRequest{UserId: "u", Item: "tea", AmountCents: -1}, codes.InvalidArgument},
		{"bad request id", &shoppb.CreateOrderRequest{RequestId: "a b", UserId: "u", Item: "tea", AmountCents: 1}, codes.InvalidArgument},
		{"request id reused", &shoppb.CreateOrderRequest{RequestId: "taken", UserId: "u1", Item: "tea", AmountCents: 999}, codes.FailedPrecondition},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.CreateOrder(ctx, tt.req); status.Code(err) != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := f.svc.GetOrder(ctx, &shoppb.GetOrderRequest{OrderId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetOrder unknown = %v, want NOT_FOUND", err)
	}
}

func TestUserCheck(t *testing.T) {
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/users/u1":
			w.WriteHeader(http.StatusOK)
		case "/users/broken":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer users.Close()
	f := newFixture(t, users.URL)
	ctx := context.Background()
	for _, tt := range []struct {
		user string
		want codes.Code
	}{{"u1", codes.OK}, {"ghost", codes.NotFound}, {"broken", codes.Unavailable}} {
		_, err := f.svc.CreateOrder(ctx, &shoppb.CreateOrderRequest{UserId: tt.user, Item: "tea", AmountCents: 1})
		if status.Code(err) != tt.want {
			t.Errorf("user %s: err = %v, want %v", tt.user, err, tt.want)
		}
	}
	users.Close()
	if _, err := f.svc.CreateOrder(ctx, order("o9")); status.Code(err) != codes.Unavailable {
		t.Errorf("users down: err = %v, want UNAVAILABLE", err)
	}
}

// TestOutbox: a publish that fails leaves the order unpublished; the
// outbox publishes it later with the trace context of its creation.
func TestOutbox(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	dead, err := nats.Connect(f.js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	deadJS, _ := jetstream.New(dead)
	dead.Close()
	live := f.svc.js
	f.svc.js = deadJS
	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx = metadataTrace(ctx, traceparent)
	if _, err := f.svc.CreateOrder(ctx, order("o1")); err != nil {
		t.Fatalf("CreateOrder with NATS down = %v, want success (the outbox has it)", err)
	}
	if got := testutil.ToFloat64(f.svc.publishErrors); got != 1 {
		t.Fatalf("publish errors = %v, want 1", got)
	}
	f.svc.js = live
	outCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunOutbox(outCtx, 20*time.Millisecond) }()
	cons, err := live.OrderedConsumer(context.Background(), events.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no event published by the outbox: %v", err)
	}
	if got := msg.Headers().Get("traceparent"); !strings.Contains(got, "0af7651916cd43dd8448eb211c80319c") {
		t.Fatalf("traceparent = %q, want the creation's trace", got)
	}
	shoptest.Eventually(t, 5*time.Second, "the order marked published", func() bool {
		var n int
		_ = f.svc.db.QueryRow(`SELECT COUNT(*) FROM orders WHERE published = 0`).Scan(&n)
		return n == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"empty payments", []string{"-payments-addr", ""}, "-payments-addr"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"no nats", []string{"-db", filepath.Join(t.TempDir(), "o.db"), "-nats-url", "nats://" + shoptest.FreeAddr(t)}, "nats"},
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

// metadataTrace returns ctx carrying the remote span context of a
// traceparent header, as the gRPC server handler would set it.
func metadataTrace(ctx context.Context, traceparent string) context.Context {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
