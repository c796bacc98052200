// Package analytics is the analytics service of the shop example; its command is
// examples/shop/analytics, which only calls Run.
package analytics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
)

type config struct {
	addr, nats, durable string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("analytics", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("ANALYTICS_ADDR", "127.0.0.1:8084"), "HTTP listen address (env ANALYTICS_ADDR)")
	fs.StringVar(&c.nats, "nats-url", shopmain.Env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env NATS_URL)")
	fs.StringVar(&c.durable, "durable", shopmain.Env("ANALYTICS_DURABLE", "analytics"), "JetStream durable consumer name (env ANALYTICS_DURABLE)")
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
	stopTracing, err := tracing.Setup(ctx, "analytics")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	nc, js, err := events.Connect(ctx, c.nats, "analytics", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := shopmain.Listen(c.addr)
	if err != nil {
		return err
	}
	reg := shopmain.NewRegistry()
	return serve(ctx, ln, nc, js, c.durable, newAggregator(time.Now, reg, logger), reg, logger)
}

// serve consumes order events and answers HTTP on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, nc *nats.Conn, js jetstream.JetStream, durable string, agg *aggregator, reg *prometheus.Registry, logger *slog.Logger) error {
	mux := http.NewServeMux()
	agg.routes(mux)
	shopmain.HandleAdmin(mux, reg, func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s: %s", nc.ConnectedUrlRedacted(), nc.Status())
		}
		return nil
	})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return shopmain.ServeHTTP(gctx, ln, mux, logger) })
	g.Go(func() error { return events.Consume(gctx, js, durable, agg.handle, logger) })
	return g.Wait()
}
