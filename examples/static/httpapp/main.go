// Command httpapp is the plain HTTP backend of the static demo. It knows
// nothing about the mesh: it reports which instance answered and which
// forwarding headers the proxy put on the request, so the demo can show round
// robin, x-request-id generation and x-forwarded-* handling from the outside.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/examples/internal/appmain"
)

// shutdownGrace bounds how long in-flight requests may run after a stop signal.
const shutdownGrace = 5 * time.Second

func main() { appmain.Main("httpapp", "127.0.0.1:8081", serve) }

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
