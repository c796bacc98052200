package orders

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// schema is the orders table. published marks the orders whose
// order.created event JetStream has stored; the outbox loop publishes the
// rest, so a NATS outage delays events but loses none.
var schema = []string{`CREATE TABLE IF NOT EXISTS orders (
	id               TEXT PRIMARY KEY,
	user_id          TEXT NOT NULL,
	item             TEXT NOT NULL,
	amount_cents     INTEGER NOT NULL,
	status           TEXT NOT NULL,
	charge_id        TEXT NOT NULL DEFAULT '',
	payments_version TEXT NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	latency_ms       REAL NOT NULL DEFAULT 0,
	traceparent      TEXT NOT NULL DEFAULT '',
	published        INTEGER NOT NULL DEFAULT 0
)`}

// Order statuses.
const (
	statusPending = "pending"
	statusPaid    = "paid"
	statusFailed  = "failed"
)

// requestIDPattern bounds what a client may choose as an order id.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// IdempotencyKey is the payments key for an order: one order, one charge,
// however often it is retried.
func IdempotencyKey(orderID string) string { return "order-" + orderID }

// service creates orders: check the user (optional), charge through
// payments, store, announce on JetStream.
type service struct {
	shoppb.UnimplementedOrdersServer
	db       *sql.DB
	payments shoppb.PaymentsClient
	js       jetstream.JetStream
	usersURL string // empty: users are not checked
	http     *http.Client
	logger   *slog.Logger

	created       *prometheus.CounterVec
	publishErrors prometheus.Counter
}

// Creation results, as counted in orders_created_total.
const (
	resultPaid         = "paid"
	resultReplayed     = "replayed"
	resultRejected     = "rejected"
	resultUserError    = "user_error"
	resultPaymentError = "payment_error"
	resultError        = "error"
)

func newService(db *sql.DB, payments shoppb.PaymentsClient, js jetstream.JetStream, usersURL string, reg prometheus.Registerer, logger *slog.Logger) *service {
	s := &service{
		db: db, payments: payments, js: js, usersURL: usersURL, logger: logger,
		http: &http.Client{Timeout: 5 * time.Second},
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orders_created_total",
			Help: "CreateOrder calls by result: paid, replayed (request id seen before), rejected, user_error, payment_error, error.",
		}, []string{"result"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orders_publish_errors_total",
			Help: "order.created publishes that failed and were left to the outbox loop.",
		}),
	}
	for _, r := range []string{resultPaid, resultReplayed, resultRejected, resultUserError, resultPaymentError, resultError} {
		s.created.WithLabelValues(r)
	}
	reg.MustRegister(s.created, s.publishErrors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orders_unpublished",
		Help: "Paid orders whose order.created event is not yet stored by JetStream.",
	}, func() float64 {
		var n int
		_ = s.db.QueryRow(`SELECT COUNT(*) FROM orders WHERE status = ? AND published = 0`, statusPaid).Scan(&n)
		return float64(n)
	}))
	return s
}

// CreateOrder creates and pays an order. With a request id, a retried call
// returns the order already paid, or retries its payment under the same
// idempotency key, so an order is never charged twice.
func (s *service) CreateOrder(ctx context.Context, req *shoppb.CreateOrderRequest) (*shoppb.Order, error) {
	start := time.Now()
	if req.GetUserId() == "" || req.GetItem() == "" || req.GetAmountCents() <= 0 {
		s.created.WithLabelValues(resultRejected).Inc()
		return nil, status.Errorf(codes.InvalidArgument, "order needs a user id, an item and a positive amount (got user %q, item %q, amount %d)",
			req.GetUserId(), req.GetItem(), req.GetAmountCents())
	}
	id := req.GetRequestId()
	if id == "" {
		id = newOrderID()
	} else if !requestIDPattern.MatchString(id) {
		s.created.WithLabelValues(resultRejected).Inc()
		return nil, status.Errorf(codes.InvalidArgument, "request id %q: want 1-64 of A-Z a-z 0-9 . _ -", id)
	}
	existing, err := s.load(ctx, id)
	switch {
	case err == nil && (existing.UserId != req.GetUserId() || existing.AmountCents != req.GetAmountCents() || existing.Item != req.GetItem()):
		s.created.WithLabelValues(resultRejected).Inc()
		return nil, status.Errorf(codes.FailedPrecondition, "request id %q was used for another order", id)
	case err == nil && existing.Status == statusPaid:
		s.created.WithLabelValues(resultReplayed).Inc()
		return existing, nil
	case err != nil && status.Code(err) != codes.NotFound:
		s.created.WithLabelValues(resultError).Inc()
		return nil, err
	}
	if err := s.checkUser(ctx, req.GetUserId()); err != nil {
		s.created.WithLabelValues(resultUserError).Inc()
		return nil, err
	}
	o := &shoppb.Order{OrderId: id, UserId: req.GetUserId(), Item: req.GetItem(), AmountCents: req.GetAmountCents(), Status: statusPending, CreatedUnixMs: start.UnixMilli()}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO orders (id, user_id, item, amount_cents, status, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, o.OrderId, o.UserId, o.Item, o.AmountCents, o.Status, o.CreatedUnixMs); err != nil {
		s.created.WithLabelValues(resultError).Inc()
		return nil, status.Errorf(codes.Internal, "store order %s: %v", id, err)
	}
	charge, err := s.payments.Charge(ctx, &shoppb.ChargeRequest{
		IdempotencyKey: IdempotencyKey(id), OrderId: id, UserId: o.UserId, AmountCents: o.AmountCents,
	})
	if err != nil {
		s.created.WithLabelValues(resultPaymentError).Inc()
		if _, derr := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE orders SET status = ? WHERE id = ? AND status != ?`, statusFailed, id, statusPaid); derr != nil {
			s.logger.Error("mark order failed", "order_id", id, "err", derr)
		}
		st := status.Convert(err)
		return nil, status.Errorf(st.Code(), "charge order %s: payments: %s", id, st.Message())
	}
	o.Status, o.ChargeId, o.PaymentsVersion = statusPaid, charge.GetChargeId(), charge.GetVersion()
	latency := float64(time.Since(start).Microseconds()) / 1000
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if _, err := s.db.ExecContext(ctx, `UPDATE orders SET status = ?, charge_id = ?, payments_version = ?, latency_ms = ?, traceparent = ? WHERE id = ?`,
		o.Status, o.ChargeId, o.PaymentsVersion, latency, carrier.Get("traceparent"), id); err != nil {
		s.created.WithLabelValues(resultError).Inc()
		return nil, status.Errorf(codes.Internal, "store paid order %s: %v", id, err)
	}
	s.publish(ctx, o, latency)
	s.created.WithLabelValues(resultPaid).Inc()
	return o, nil
}

// publish announces a paid order; on failure the outbox loop tries again.
func (s *service) publish(ctx context.Context, o *shoppb.Order, latencyMs float64) {
	err := events.Publish(ctx, s.js, events.Order{
		OrderID: o.OrderId, UserID: o.UserId, Item: o.Item, AmountCents: o.AmountCents,
		ChargeID: o.ChargeId, PaymentsVersion: o.PaymentsVersion, CreatedUnixMs: o.CreatedUnixMs, LatencyMs: latencyMs,
	})
	if err != nil {
		s.publishErrors.Inc()
		s.logger.Warn("publish failed, the outbox will retry", "order_id", o.OrderId, "err", err)
		return
	}
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE orders SET published = 1 WHERE id = ?`, o.OrderId); err != nil {
		// JetStream deduplicates on the order id, so a second publish is harmless.
		s.logger.Warn("mark order published", "order_id", o.OrderId, "err", err)
	}
}

// RunOutbox publishes, every interval until ctx ends, the paid orders whose
// event is not yet stored, each under the trace context of its creation.
func (s *service) RunOutbox(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.flushOutbox(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("outbox", "err", err)
		}
	}
}

func (s *service) flushOutbox(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT id, user_id, item, amount_cents, status, charge_id, payments_version, created_at, latency_ms, traceparent
		FROM orders WHERE status = ? AND published = 0 ORDER BY created_at LIMIT 100`, statusPaid)
	if err != nil {
		return fmt.Errorf("read unpublished orders: %w", err)
	}
	type pending struct {
		o           *shoppb.Order
		latency     float64
		traceparent string
	}
	var todo []pending
	for rows.Next() {
		p := pending{o: &shoppb.Order{}}
		if err := rows.Scan(&p.o.OrderId, &p.o.UserId, &p.o.Item, &p.o.AmountCents, &p.o.Status, &p.o.ChargeId, &p.o.PaymentsVersion, &p.o.CreatedUnixMs, &p.latency, &p.traceparent); err != nil {
			rows.Close()
			return fmt.Errorf("read unpublished orders: %w", err)
		}
		todo = append(todo, p)
	}
	rows.Close()
	for _, p := range todo {
		pctx := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier{"traceparent": p.traceparent})
		s.publish(pctx, p.o, p.latency)
	}
	return nil
}

// GetOrder returns a stored order.
func (s *service) GetOrder(ctx context.Context, req *shoppb.GetOrderRequest) (*shoppb.Order, error) {
	return s.load(ctx, req.GetOrderId())
}

func (s *service) load(ctx context.Context, id string) (*shoppb.Order, error) {
	o := &shoppb.Order{}
	err := s.db.QueryRowContext(ctx, `SELECT id, user_id, item, amount_cents, status, charge_id, payments_version, created_at FROM orders WHERE id = ?`, id).
		Scan(&o.OrderId, &o.UserId, &o.Item, &o.AmountCents, &o.Status, &o.ChargeId, &o.PaymentsVersion, &o.CreatedUnixMs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "order %q not found", id)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read order %q: %v", id, err)
	}
	return o, nil
}

// checkUser asks users whether the user exists, when a users URL is set.
func (s *service) checkUser(ctx context.Context, userID string) error {
	if s.usersURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.usersURL+"/users/"+url.PathEscape(userID), nil)
	if err != nil {
		return status.Errorf(codes.Internal, "users request: %v", err)
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := s.http.Do(req)
	if err != nil {
		return status.Errorf(codes.Unavailable, "check user %s: %v", userID, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return status.Errorf(codes.NotFound, "user %q not found", userID)
	default:
		return status.Errorf(codes.Unavailable, "check user %s: users answered %s", userID, resp.Status)
	}
}

func newOrderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
