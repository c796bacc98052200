// Package users is the users service of the shop example; its command is
// examples/shop/users, which only calls Run.
package users

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/tracing"
)

type config struct {
	addr, db, redis string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("USERS_ADDR", "127.0.0.1:8081"), "HTTP listen address (env USERS_ADDR)")
	fs.StringVar(&c.db, "db", shopmain.Env("USERS_DB", "users.db"), "SQLite database file (env USERS_DB)")
	fs.StringVar(&c.redis, "redis", shopmain.Env("REDIS_ADDR", "127.0.0.1:6379"), "Redis address, host:port (env REDIS_ADDR)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
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
	stopTracing, err := tracing.Setup(ctx, "users")
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	db, err := sqlitedb.Open(ctx, c.db, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
	cache := newRedis(c.redis)
	defer cache.Close()
	ln, err := shopmain.Listen(c.addr)
	if err != nil {
		return err
	}
	reg := shopmain.NewRegistry()
	return serve(ctx, ln, newService(db, cache, reg, logger), reg, logger)
}

// newRedis returns a client that gives up quickly, so a dead Redis costs a
// read little more than the SQLite query it falls back to.
func newRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1, // no retries: fall back to SQLite at once
	})
}

// serve answers the users API, /metrics and /healthz on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, s *service, reg *prometheus.Registry, logger *slog.Logger) error {
	mux := http.NewServeMux()
	s.routes(mux)
	shopmain.HandleAdmin(mux, reg, s.db.PingContext)
	return shopmain.ServeHTTP(ctx, ln, mux, logger)
}
