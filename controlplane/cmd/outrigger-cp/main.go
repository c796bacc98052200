// Command outrigger-cp is the Outrigger control plane: it watches Consul and
// serves the mesh over xDS (ADS, state of the world and delta) to sidecars
// and proxyless gRPC clients. `outrigger-cp bootstrap` prints a sidecar's
// Envoy bootstrap.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/consul"
	"github.com/outrigger-mesh/outrigger/controlplane/dashboard"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bootstrap" {
		return runBootstrap(args[1:], stdout, stderr, nil)
	}
	if len(args) > 0 && args[0] == "sidecar-init" {
		return runSidecarInit(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-cp:", err)
		return 1
	}
	if o.version {
		fmt.Fprintln(stdout, "outrigger-cp", version)
		return 0
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "outrigger-cp",
		Level:      o.logLevel,
		Output:     stderr,
		JSONFormat: o.logJSON,
	})
	client, err := newConsulClient(o.consulAddr)
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	xdsLis, err := net.Listen("tcp", o.xdsAddr)
	if err != nil {
		logger.Error("cannot listen for xDS", "address", o.xdsAddr, "error", err)
		return 1
	}
	httpLis, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		xdsLis.Close()
		logger.Error("cannot listen for HTTP", "address", o.httpAddr, "error", err)
		return 1
	}
	cfg := serveConfig{pprof: o.pprof, plaintext: !o.meshTLS, queryErrors: &queryErrors{}}
	// The watcher has its own client, so that only its queries are counted
	// as watch errors (the dashboard's catalog reads are not).
	watchClient, err := newWatcherClient(o.consulAddr, cfg.queryErrors)
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	if o.dashAddr != "" {
		dashLis, err := net.Listen("tcp", o.dashAddr)
		if err != nil {
			xdsLis.Close()
			httpLis.Close()
			logger.Error("cannot listen for the dashboard", "address", o.dashAddr, "error", err)
			return 1
		}
		cfg.dash = &dashboardConfig{lis: dashLis, catalog: dashboard.ConsulCatalog(client)}
		logger.Info("dashboard", "url", "http://"+dashLis.Addr().String()+"/")
	}
	if o.inject.enabled() {
		stopInjector, err := startInjector(ctx, logger.Named("inject"), &o.inject)
		if err != nil {
			xdsLis.Close()
			httpLis.Close()
			logger.Error("cannot start the sidecar injector", "error", err)
			return 1
		}
		defer stopInjector()
	}
	logger.Info("starting", "version", version, "consul", o.consulAddr,
		"xds", xdsLis.Addr().String(), "http", httpLis.Addr().String(), "pprof", o.pprof)
	w := consul.NewWatcher(watchClient, consul.Options{Logger: logger.Named("consul")})
	if err := serve(ctx, logger, w, xdsLis, httpLis, cfg); err != nil {
		logger.Error("stopped", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// runBootstrap prints a sidecar's bootstrap. lookup nil means Consul at
// -consul-addr.
func runBootstrap(args []string, stdout, stderr io.Writer, lookup proxyLookup) int {
	o, err := parseBootstrapFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-cp bootstrap:", err)
		return 1
	}
	if lookup == nil {
		client, err := newConsulClient(o.consulAddr)
		if err != nil {
			fmt.Fprintln(stderr, "outrigger-cp bootstrap:", err)
			return 1
		}
		lookup = consulLookup{client: client, addr: o.consulAddr}
	}
	out, err := bootstrapYAML(o, lookup)
	if err != nil {
		fmt.Fprintln(stderr, "outrigger-cp bootstrap:", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintln(stderr, "outrigger-cp bootstrap:", err)
		return 1
	}
	return 0
}
