// Package orders is the orders service of the shop example; its command is
// examples/shop/orders, which only calls Run.
package orders

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// outboxInterval is how often unpublished events are retried.
const outboxInterval = time.Second

type config struct {
	addr, adminAddr, db, payments, users, nats string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("ORDERS_ADDR", "127.0.0.1:9091"), "gRPC listen address (env ORDERS_ADDR)")
	fs.StringVar(&c.adminAddr, "admin-addr", shopmain.Env("ORDERS_ADMIN_ADDR", "127.0.0.1:9191"), "HTTP address for /metrics and /healthz (env ORDERS_ADMIN_ADDR)")
	fs.StringVar(&c.db, "db", shopmain.Env("ORDERS_DB", "orders.db"), "SQLite database file (env ORDERS_DB)")
	fs.StringVar(&c.payments, "payments-addr", shopmain.Env("PAYMENTS_ADDR", "127.0.0.1:9090"), "payments gRPC address, host:port (env PAYMENTS_ADDR)")
	fs.StringVar(&c.users, "users-url", shopmain.Env("USERS_URL", ""), "users base URL, e.g. http://127.0.0.1:8081; empty skips the user check (env USERS_URL)")
	fs.StringVar(&c.nats, "nats-url", shopmain.Env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env NATS_URL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.payments == "" {
		return config{}, fmt.Errorf("-payments-addr must not be empty")
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
	stopTracing, err := tracing.Setup(ctx, "orders")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	db, err := sqlitedb.Open(ctx, c.db, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
	nc, js, err := events.Connect(ctx, c.nats, "orders", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	cc, err := grpc.NewClient(c.payments, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
	if err != nil {
		return fmt.Errorf("payments client for %s: %w", c.payments, err)
	}
	defer cc.Close()
	ln, err := shopmain.Listen(c.addr)
	if err != nil {
		return err
	}
	adminLn, err := shopmain.Listen(c.adminAddr)
	if err != nil {
		_ = ln.Close()
		return err
	}
	reg := shopmain.NewRegistry()
	svc := newService(db, shoppb.NewPaymentsClient(cc), js, c.users, reg, logger)
	return serve(ctx, ln, adminLn, svc, reg, logger)
}

// serve answers gRPC on ln and /metrics, /healthz on adminLn, and runs the
// outbox, until ctx ends.
func serve(ctx context.Context, ln, adminLn net.Listener, svc *service, reg *prometheus.Registry, logger *slog.Logger) error {
	srv := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()))
	shoppb.RegisterOrdersServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	mux := http.NewServeMux()
	shopmain.HandleAdmin(mux, reg, svc.db.PingContext)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return shopmain.ServeGRPC(gctx, ln, srv, logger) })
	g.Go(func() error { return shopmain.ServeHTTP(gctx, adminLn, mux, logger) })
	g.Go(func() error { return svc.RunOutbox(gctx, outboxInterval) })
	g.Go(func() error { <-gctx.Done(); hs.Shutdown(); return nil })
	return g.Wait()
}
