// Package loadgen is the shop's load generator; its command is
// examples/shop/loadgen, which only calls Run.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// maxInFlight bounds concurrent orders; a tick that finds them all busy is
// counted as an error ("overloaded") instead of queueing without bound.
const maxInFlight = 256

type config struct {
	usersURL, usersHost, ordersAddr, ordersAuthority, token string
	rate                                                    float64
	users, retries                                          int
	duration, timeout                                       time.Duration
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.usersURL, "users-url", shopmain.Env("LOADGEN_USERS_URL", "http://127.0.0.1:8080"), "base URL of the users API, usually the gateway (env LOADGEN_USERS_URL)")
	fs.StringVar(&c.usersHost, "users-host", shopmain.Env("LOADGEN_USERS_HOST", ""), "Host header for users requests, for a gateway routing by host (env LOADGEN_USERS_HOST)")
	fs.StringVar(&c.ordersAddr, "orders-addr", shopmain.Env("LOADGEN_ORDERS_ADDR", "127.0.0.1:8080"), "gRPC address of the orders API, usually the gateway (env LOADGEN_ORDERS_ADDR)")
	fs.StringVar(&c.ordersAuthority, "orders-authority", shopmain.Env("LOADGEN_ORDERS_AUTHORITY", ""), ":authority for orders calls, for a gateway routing by host (env LOADGEN_ORDERS_AUTHORITY)")
	fs.StringVar(&c.token, "token", shopmain.Env("LOADGEN_TOKEN", ""), "bearer token sent with every request, for a gateway validating JWTs (env LOADGEN_TOKEN)")
	fs.Float64Var(&c.rate, "rate", 20, "orders per second")
	fs.IntVar(&c.users, "users", 10, "users created at start")
	fs.DurationVar(&c.duration, "duration", 0, "how long to run; 0 runs until stopped")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of each request")
	fs.IntVar(&c.retries, "retries", 0, "retries of an order that failed UNAVAILABLE or DEADLINE_EXCEEDED, with the same request id (so never charged twice)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case c.rate <= 0 || c.rate > 10000:
		return config{}, fmt.Errorf("-rate %v: want (0, 10000]", c.rate)
	case c.users < 1:
		return config{}, fmt.Errorf("-users %d: want at least 1", c.users)
	case c.retries < 0 || c.retries > 10:
		return config{}, fmt.Errorf("-retries %d: want 0..10", c.retries)
	case c.timeout <= 0 || c.duration < 0:
		return config{}, fmt.Errorf("-timeout %v, -duration %v: want a positive timeout and a non-negative duration", c.timeout, c.duration)
	}
	return c, nil
}

// Run parses args, creates users, then creates orders at a steady rate and
// prints a one-line summary per second to stdout until ctx ends or
// -duration passes.
func Run(ctx context.Context, args []string, logger *slog.Logger) error {
	return run(ctx, args, os.Stdout, logger)
}

func run(ctx context.Context, args []string, out io.Writer, logger *slog.Logger) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	stopTracing, err := tracing.Setup(ctx, "loadgen")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(otelgrpc.NewClientHandler())}
	if c.ordersAuthority != "" {
		opts = append(opts, grpc.WithAuthority(c.ordersAuthority))
	}
	cc, err := grpc.NewClient(c.ordersAddr, opts...)
	if err != nil {
		return fmt.Errorf("orders client for %s: %w", c.ordersAddr, err)
	}
	defer cc.Close()
	cl := &client{
		usersURL: strings.TrimRight(c.usersURL, "/"), usersHost: c.usersHost, token: c.token,
		http: &http.Client{Timeout: c.timeout}, orders: shoppb.NewOrdersClient(cc),
	}
	userIDs, err := createUsers(ctx, cl, c.users, logger)
	if err != nil {
		return err
	}
	logger.Info("users created", "count", len(userIDs))
	return drive(ctx, cl, c, userIDs, out)
}

// createUsers creates n users, retrying each second until the first
// succeeds (the gateway may still be starting) or ctx ends.
func createUsers(ctx context.Context, cl *client, n int, logger *slog.Logger) ([]string, error) {
	var ids []string
	for len(ids) < n {
		id, err := cl.createUser(ctx, len(ids))
		if err == nil {
			ids = append(ids, id)
			continue
		}
		if len(ids) > 0 {
			logger.Warn("going on with fewer users", "created", len(ids), "err", err)
			return ids, nil
		}
		logger.Warn("users not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no user created before stop: %w", err)
		case <-time.After(time.Second):
		}
	}
	return ids, nil
}

// drive sends orders at c.rate and prints a summary each second.
func drive(ctx context.Context, cl *client, c config, userIDs []string, out io.Writer) error {
	tracer := otel.Tracer("outrigger/examples/shop/loadgen")
	w := newWindow()
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
	defer tick.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	begin := time.Now()
	prefix := newRunID()
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-report.C:
			fmt.Fprintln(out, w.take(time.Since(begin)))
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				w.fail("overloaded")
				continue
			}
			n++
			id := fmt.Sprintf("%s-%d", prefix, n)
			wg.Go(func() {
				defer func() { <-sem }()
				rctx, span := tracer.Start(context.WithoutCancel(ctx), "checkout")
				defer span.End()
				start := time.Now()
				version, err := cl.orderWithRetries(rctx, newOrder(id, userIDs), c.timeout, c.retries, w)
				if err != nil {
					w.fail(errorKind(err))
					return
				}
				w.ok(time.Since(start), version)
			})
		}
	}
}

// newRunID prefixes the request ids of one run, so runs never collide.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lg" + hex.EncodeToString(b[:])
}
