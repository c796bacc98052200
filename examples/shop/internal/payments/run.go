// Package payments is the payments service of the shop example; its command is
// examples/shop/payments, which only calls Run.
package payments

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

type config struct {
	addr, adminAddr, db, version string
	knobs                        knobs
}

func parseFlags(args []string) (config, error) {
	var c config
	failRate, err := shopmain.EnvFloat("PAYMENTS_FAIL_RATE", 0)
	if err != nil {
		return config{}, err
	}
	latency, err := shopmain.EnvDuration("PAYMENTS_LATENCY", 0)
	if err != nil {
		return config{}, err
	}
	fs := flag.NewFlagSet("payments", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("PAYMENTS_ADDR", "127.0.0.1:9090"), "gRPC listen address (env PAYMENTS_ADDR)")
	fs.StringVar(&c.adminAddr, "admin-addr", shopmain.Env("PAYMENTS_ADMIN_ADDR", "127.0.0.1:9190"), "HTTP address for /metrics and /healthz (env PAYMENTS_ADMIN_ADDR)")
	fs.StringVar(&c.db, "db", shopmain.Env("PAYMENTS_DB", "payments.db"), "SQLite database file, shareable between instances (env PAYMENTS_DB)")
	fs.StringVar(&c.version, "version", shopmain.Env("PAYMENTS_VERSION", "v1"), "version reported in responses and metrics (env PAYMENTS_VERSION)")
	fs.Float64Var(&c.knobs.failRate, "fail-rate", failRate, "share of calls failed with UNAVAILABLE, 0..1 (env PAYMENTS_FAIL_RATE)")
	fs.DurationVar(&c.knobs.latency, "latency", latency, "latency added to every call (env PAYMENTS_LATENCY)")
	fs.BoolVar(&c.knobs.failAfterCharge, "fail-after-charge", shopmain.Env("PAYMENTS_FAIL_AFTER_CHARGE", "") == "true",
		"inject failures after storing the charge (a lost response) instead of before (env PAYMENTS_FAIL_AFTER_CHARGE=true)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.version == "" {
		return config{}, fmt.Errorf("-version must not be empty")
	}
	if err := c.knobs.validate(); err != nil {
		return config{}, err
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
	logger = logger.With("version", c.version)
	stopTracing, err := tracing.Setup(ctx, "payments")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	db, err := sqlitedb.Open(ctx, c.db, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
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
	svc := newService(db, c.version, c.knobs, reg, logger)
	logger.Info("knobs", "fail_rate", c.knobs.failRate, "latency", c.knobs.latency.String(), "fail_after_charge", c.knobs.failAfterCharge)
	return serve(ctx, ln, adminLn, svc, reg, logger)
}

// serve answers gRPC on ln and /metrics, /healthz on adminLn until ctx ends.
func serve(ctx context.Context, ln, adminLn net.Listener, svc *service, reg *prometheus.Registry, logger *slog.Logger) error {
	srv := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()))
	shoppb.RegisterPaymentsServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	mux := http.NewServeMux()
	shopmain.HandleAdmin(mux, reg, svc.db.PingContext)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return shopmain.ServeGRPC(gctx, ln, srv, logger) })
	g.Go(func() error { return shopmain.ServeHTTP(gctx, adminLn, mux, logger) })
	g.Go(func() error { <-gctx.Done(); hs.Shutdown(); return nil })
	return g.Wait()
}
