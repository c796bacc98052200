// Package events is the shop's message queue contract: the ORDERS JetStream
// stream, the order.created event, publishing with W3C trace context in the
// headers, and durable consumers with explicit acks.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
)

// Stream and subject names.
const (
	Stream       = "ORDERS"
	OrderCreated = "order.created"
)

// dedupWindow is how long JetStream remembers a Nats-Msg-Id, so a publish
// retried within it is stored once.
const dedupWindow = 10 * time.Minute

// Order is the body of an order.created event.
type Order struct {
	OrderID         string `json:"order_id"`
	UserID          string `json:"user_id"`
	Item            string `json:"item"`
	AmountCents     int64  `json:"amount_cents"`
	ChargeID        string `json:"charge_id"`
	PaymentsVersion string `json:"payments_version"`
	CreatedUnixMs   int64  `json:"created_unix_ms"`
	// LatencyMs is how long orders took to create the order, payment
	// included.
	LatencyMs float64 `json:"latency_ms"`
}

// connectRetry is how long Connect waits between attempts.
const connectRetry = 500 * time.Millisecond

// Connect dials NATS at url and returns the connection and its JetStream
// context, with the ORDERS stream created or updated. A server that is not
// up yet is waited for, retrying every half second, until ctx ends: the
// services can start in any order. Once connected, the client reconnects
// on its own for as long as the process lives.
func Connect(ctx context.Context, url, name string, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	for attempt := 1; ; attempt++ {
		nc, js, err := connectOnce(ctx, url, name)
		if err == nil {
			return nc, js, nil
		}
		if attempt == 1 || attempt%20 == 0 {
			logger.Warn("NATS not ready, retrying", "url", url, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, err
		case <-time.After(connectRetry):
		}
	}
}

func connectOnce(ctx context.Context, url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream on %s: %w", url, err)
	}
	if err := EnsureStream(ctx, js); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats %s: %w", url, err)
	}
	return nc, js, nil
}

// EnsureStream creates or updates the ORDERS stream; every service calls it
// at start, so the order they start in does not matter.
func EnsureStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       Stream,
		Subjects:   []string{"order.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: dedupWindow,
		MaxAge:     24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", Stream, err)
	}
	return nil
}

// Publish sends o as order.created with ctx's trace context in the headers
// and the order id as Nats-Msg-Id, so a retried publish is stored once.
func Publish(ctx context.Context, js jetstream.JetStream, o Order) error {
	body, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode order %s: %w", o.OrderID, err)
	}
	msg := nats.NewMsg(OrderCreated)
	msg.Data = body
	tracing.Inject(ctx, msg.Header)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(o.OrderID)); err != nil {
		return fmt.Errorf("publish %s for order %s: %w", OrderCreated, o.OrderID, err)
	}
	return nil
}

// Handler processes one order event. ctx carries the publisher's trace
// context. A nil error acks the message; an error naks it for redelivery.
type Handler func(ctx context.Context, o Order) error

// Consume runs the durable consumer named durable on order.created until
// ctx ends. Each message is acked only after h succeeds, so a consumer
// that stops, or crashes, resumes where it left off. A message that does
// not decode is terminated (never redelivered) and logged.
func Consume(ctx context.Context, js jetstream.JetStream, durable string, h Handler, logger *slog.Logger) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: OrderCreated,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, Stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var o Order
		if err := json.Unmarshal(m.Data(), &o); err != nil {
			logger.Error("dropping undecodable event", "subject", m.Subject(), "err", err)
			_ = m.Term()
			return
		}
		mctx := tracing.Extract(ctx, m.Headers())
		if err := h(mctx, o); err != nil {
			logger.Warn("event not processed, will be redelivered", "order_id", o.OrderID, "err", err)
			_ = m.NakWithDelay(time.Second)
			return
		}
		if err := m.DoubleAck(mctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("ack failed, event may be redelivered", "order_id", o.OrderID, "err", err)
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		logger.Debug("consume", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", durable, err)
	}
	logger.Info("consuming", "stream", Stream, "durable", durable)
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}
