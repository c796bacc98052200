package notifications

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
)

// schema is the sent table; the order id as primary key makes a
// redelivered event a no-op.
var schema = []string{`CREATE TABLE IF NOT EXISTS sent (
	order_id TEXT PRIMARY KEY,
	user_id  TEXT NOT NULL,
	message  TEXT NOT NULL,
	trace_id TEXT NOT NULL,
	sent_at  INTEGER NOT NULL
)`}

// Notification is one message "sent" to a customer.
type Notification struct {
	OrderID string `json:"order_id"`
	UserID  string `json:"user_id"`
	Message string `json:"message"`
	// TraceID is the W3C trace id the order event carried.
	TraceID string `json:"trace_id"`
	SentAt  int64  `json:"sent_unix_ms"`
}

// maxList caps how many notifications one GET returns.
const maxList = 1000

// service "sends" a notification per order event and lists them.
type service struct {
	db         *sql.DB
	logger     *slog.Logger
	tracer     trace.Tracer
	sent       prometheus.Counter
	duplicates prometheus.Counter
}

func newService(db *sql.DB, reg prometheus.Registerer, logger *slog.Logger) *service {
	s := &service{
		db: db, logger: logger,
		tracer: otel.Tracer("outrigger/examples/shop/notifications"),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "notifications_sent_total", Help: "Notifications sent, one per order.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "notifications_duplicates_total", Help: "Redelivered order events that had already been notified.",
		}),
	}
	reg.MustRegister(s.sent, s.duplicates)
	return s
}

// handle records the notification for one order event. It is idempotent,
// so an event redelivered after a crash is not sent twice.
func (s *service) handle(ctx context.Context, o events.Order) error {
	ctx, span := s.tracer.Start(ctx, "notifications.send", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("order_id", o.OrderID)))
	defer span.End()
	traceID := ""
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		traceID = sc.TraceID().String()
	}
	msg := fmt.Sprintf("Thanks for your order %s: %s, %d.%02d paid.", o.OrderID, o.Item, o.AmountCents/100, o.AmountCents%100)
	res, err := s.db.ExecContext(ctx, `INSERT INTO sent (order_id, user_id, message, trace_id, sent_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO NOTHING`, o.OrderID, o.UserID, msg, traceID, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("record notification for order %s: %w", o.OrderID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		s.duplicates.Inc()
		return nil
	}
	s.sent.Inc()
	s.logger.Info("notified", "order_id", o.OrderID, "user_id", o.UserID, "trace_id", traceID)
	return nil
}

func (s *service) list(ctx context.Context, limit int) ([]Notification, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT order_id, user_id, message, trace_id, sent_at FROM sent ORDER BY sent_at, order_id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	out := []Notification{}
	for rows.Next() {
		var n Notification
		if err := rows.Scan(&n.OrderID, &n.UserID, &n.Message, &n.TraceID, &n.SentAt); err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (s *service) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /notifications", func(w http.ResponseWriter, r *http.Request) {
		limit := maxList
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxList {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit %q: want 1..%d", v, maxList)})
				return
			}
			limit = n
		}
		list, err := s.list(r.Context(), limit)
		if err != nil {
			s.logger.Error("list", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "notifications": list})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
