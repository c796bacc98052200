// Command grpcapp is the gRPC backend of the static demo: grpc-go's interop
// TestService plus the standard health and reflection services, served as
// cleartext HTTP/2 (h2c) so a proxy cluster with http2_protocol_options can
// reach it without TLS.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"

	"github.com/outrigger-mesh/outrigger/examples/internal/appmain"
)

// shutdownGrace bounds how long in-flight RPCs may run after a stop signal.
const shutdownGrace = 5 * time.Second

func main() { appmain.Main("grpcapp", "127.0.0.1:8082", serve) }

// serve answers gRPC on ln until ctx ends, then stops gracefully, cutting off
// RPCs still running after shutdownGrace. It owns ln.
func serve(ctx context.Context, ln net.Listener, name string, logger hclog.Logger) error {
	addr := ln.Addr().String()
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &testService{name: name, instance: addr})
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthSrv.SetServingStatus(testgrpc.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	// Reflection lets grpcurl and friends explore the demo without .proto files.
	reflection.Register(srv)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", addr, "protocol", "h2c")

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", addr)
	// Tell health watchers first, so a balancer stops picking us before we go.
	healthSrv.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(shutdownGrace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		logger.Warn("grace period over, cutting off RPCs", "grace", shutdownGrace)
		srv.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}
