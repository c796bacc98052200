// Package notifications is the notifications service of the shop example; its command is
// examples/shop/notifications, which only calls Run.
package notifications

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
)

type config struct {
	addr, db, nats, durable string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("notifications", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("NOTIFICATIONS_ADDR", "127.0.0.1:8083"), "HTTP listen address (env NOTIFICATIONS_ADDR)")
	fs.StringVar(&c.db, "db", shopmain.Env("NOTIFICATIONS_DB", "notifications.db"), "SQLite database file (env NOTIFICATIONS_DB)")
	fs.StringVar(&c.nats, "nats-url", shopmain.Env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env NATS_URL)")
	fs.StringVar(&c.durable, "durable", shopmain.Env("NOTIFICATIONS_DURABLE", "notifications"), "JetStream durable consumer name (env NOTIFICATIONS_DURABLE)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.durable == "" {
		return config{}, errors.New("-durable must not be empty")
	}
	return c, nil
}

// Run parses args (flags, with environment defaults), serves until ctx
// ends, then stops gracefully.
func Run(ctx context.Context, args []string, logger *slog.Logger) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx, "notifications")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	db, err := sqlitedb.Open(ctx, c.db, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
	nc, js, err := events.Connect(ctx, c.nats, "notifications", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := shopmain.Listen(c.addr)
	if err != nil {
		return err
	}
	reg := shopmain.NewRegistry()
	return serve(ctx, ln, nc, js, c.durable, newService(db, reg, logger), reg, logger)
}

// serve consumes order events and answers HTTP on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, nc *nats.Conn, js jetstream.JetStream, durable string, svc *service, reg *prometheus.Registry, logger *slog.Logger) error {
	mux := http.NewServeMux()
	svc.routes(mux)
	shopmain.HandleAdmin(mux, reg, func(ctx context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s: %s", nc.ConnectedUrlRedacted(), nc.Status())
		}
		return svc.db.PingContext(ctx)
	})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return shopmain.ServeHTTP(gctx, ln, mux, logger) })
	g.Go(func() error { return events.Consume(gctx, js, durable, svc.handle, logger) })
	return g.Wait()
}
