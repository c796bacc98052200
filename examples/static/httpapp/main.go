// Command httpapp is the plain HTTP backend of the static demo. It knows
// nothing about the mesh: it reports which instance answered and which
// forwarding headers the proxy put on the request, so the demo can show round
// robin, x-request-id generation and x-forwarded-* handling from the outside.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// shutdownGrace bounds how long in-flight requests may run after a stop signal.
const shutdownGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "httpapp: %v\n", err)
		os.Exit(1)
	}
}

// config is what the command line selects.
type config struct {
	addr string
	name string
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("httpapp", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8081", "address to listen on (host:port)")
	fs.StringVar(&cfg.name, "name", "httpapp", "service name reported in responses")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.name == "" {
		return config{}, errors.New("-name must not be empty")
	}
	return cfg, nil
}

// run listens on the configured address and serves until ctx ends.
func run(ctx context.Context, args []string, logOut io.Writer) error {
	cfg, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: cfg.name, Output: logOut, Level: hclog.Info})
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	return serve(ctx, ln, cfg.name, logger)
}

// serve answers on ln until ctx ends, then shuts down gracefully. It owns ln.
func serve(ctx context.Context, ln net.Listener, name string, logger hclog.Logger) error {
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           newHandler(name, addr, logger),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// Cleartext HTTP/2 too, so the app can also be reached with h2c directly
	// or from an h2c upstream cluster.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", addr)

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", addr)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		<-errc
		return fmt.Errorf("shutdown %s: %w", addr, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}
