package payments

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// schema is the charges table; the idempotency key is its primary key, so
// two charges for one key cannot exist, whichever instance takes them.
var schema = []string{`CREATE TABLE IF NOT EXISTS charges (
	idempotency_key TEXT PRIMARY KEY,
	charge_id       TEXT NOT NULL,
	order_id        TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	amount_cents    INTEGER NOT NULL,
	version         TEXT NOT NULL,
	created_at      INTEGER NOT NULL
)`}

// knobs are the fault-injection settings.
type knobs struct {
	// failRate is the share of calls that fail with UNAVAILABLE, in [0, 1].
	failRate float64
	// latency is added to every call.
	latency time.Duration
	// failAfterCharge makes injected failures happen after the charge is
	// stored: the caller sees an error for a charge that exists, the case
	// idempotency keys are for.
	failAfterCharge bool
}

func (k knobs) validate() error {
	if k.failRate < 0 || k.failRate > 1 {
		return fmt.Errorf("fail rate %v: must be within [0, 1]", k.failRate)
	}
	if k.latency < 0 {
		return fmt.Errorf("latency %v: must not be negative", k.latency)
	}
	return nil
}

// service charges orders, once per idempotency key.
type service struct {
	shoppb.UnimplementedPaymentsServer
	db      *sql.DB
	version string
	knobs   knobs
	logger  *slog.Logger
	charges *prometheus.CounterVec
}

// Charge results, as counted in payments_charges_total.
const (
	resultCharged  = "charged"
	resultReplayed = "replayed"
	resultInjected = "injected_failure"
	resultRejected = "rejected"
	resultError    = "error"
)

func newService(db *sql.DB, version string, k knobs, reg prometheus.Registerer, logger *slog.Logger) *service {
	s := &service{
		db: db, version: version, knobs: k, logger: logger,
		charges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "payments_charges_total",
			Help:        "Charge calls by result: charged, replayed (key seen before), injected_failure, rejected (bad request), error.",
			ConstLabels: prometheus.Labels{"version": version},
		}, []string{"result"}),
	}
	for _, r := range []string{resultCharged, resultReplayed, resultInjected, resultRejected, resultError} {
		s.charges.WithLabelValues(r)
	}
	reg.MustRegister(s.charges)
	return s
}

// Charge stores a charge under the request's idempotency key, or returns
// the charge already stored under it.
func (s *service) Charge(ctx context.Context, req *shoppb.ChargeRequest) (*shoppb.ChargeResponse, error) {
	if req.GetIdempotencyKey() == "" || req.GetOrderId() == "" || req.GetAmountCents() <= 0 {
		s.charges.WithLabelValues(resultRejected).Inc()
		return nil, status.Errorf(codes.InvalidArgument, "charge needs an idempotency key, an order id and a positive amount (got key %q, order %q, amount %d)",
			req.GetIdempotencyKey(), req.GetOrderId(), req.GetAmountCents())
	}
	if s.knobs.latency > 0 {
		t := time.NewTimer(s.knobs.latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	inject := s.knobs.failRate > 0 && mrand.Float64() < s.knobs.failRate
	if inject && !s.knobs.failAfterCharge {
		s.charges.WithLabelValues(resultInjected).Inc()
		return nil, status.Errorf(codes.Unavailable, "payments %s: injected failure before charging order %s", s.version, req.GetOrderId())
	}
	resp, err := s.charge(ctx, req)
	if err != nil {
		var st interface{ GRPCStatus() *status.Status }
		if errors.As(err, &st) {
			s.charges.WithLabelValues(resultRejected).Inc()
			return nil, err
		}
		s.charges.WithLabelValues(resultError).Inc()
		s.logger.Error("charge", "order_id", req.GetOrderId(), "err", err)
		return nil, status.Errorf(codes.Internal, "payments %s: %v", s.version, err)
	}
	if inject {
		s.charges.WithLabelValues(resultInjected).Inc()
		return nil, status.Errorf(codes.Unavailable, "payments %s: injected failure after charging order %s", s.version, req.GetOrderId())
	}
	if resp.Replayed {
		s.charges.WithLabelValues(resultReplayed).Inc()
	} else {
		s.charges.WithLabelValues(resultCharged).Inc()
	}
	return resp, nil
}

func (s *service) charge(ctx context.Context, req *shoppb.ChargeRequest) (*shoppb.ChargeResponse, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO charges (idempotency_key, charge_id, order_id, user_id, amount_cents, version, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
		req.GetIdempotencyKey(), newChargeID(), req.GetOrderId(), req.GetUserId(), req.GetAmountCents(), s.version, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store charge for key %q: %w", req.GetIdempotencyKey(), err)
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("store charge for key %q: %w", req.GetIdempotencyKey(), err)
	}
	var (
		chargeID, orderID, version string
		amount                     int64
	)
	err = s.db.QueryRowContext(ctx, `SELECT charge_id, order_id, amount_cents, version FROM charges WHERE idempotency_key = ?`,
		req.GetIdempotencyKey()).Scan(&chargeID, &orderID, &amount, &version)
	if err != nil {
		return nil, fmt.Errorf("read charge for key %q: %w", req.GetIdempotencyKey(), err)
	}
	if orderID != req.GetOrderId() || amount != req.GetAmountCents() {
		return nil, status.Errorf(codes.FailedPrecondition, "idempotency key %q was used for order %s (%d cents), not order %s (%d cents)",
			req.GetIdempotencyKey(), orderID, amount, req.GetOrderId(), req.GetAmountCents())
	}
	return &shoppb.ChargeResponse{ChargeId: chargeID, Version: version, Replayed: inserted == 0, ServedBy: s.version}, nil
}

// count returns how many charges are stored.
func (s *service) count(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM charges`).Scan(&n)
	return n, err
}

func newChargeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ch_" + hex.EncodeToString(b[:])
}
