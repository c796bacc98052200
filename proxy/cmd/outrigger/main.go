// Command outrigger is the Outrigger proxy: it runs an Envoy v3 bootstrap.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/admin"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
	"github.com/outrigger-mesh/outrigger/xds/resource"
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
	if len(args) > 0 && args[0] == "redirect-traffic" {
		return runRedirect(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger:", err)
		return 1
	}
	if o.version {
		fmt.Fprintln(stdout, "outrigger", version)
		return 0
	}

	b, err := bootstrap.Load(o.configPath, o.configYAML)
	if err == nil {
		err = server.Servable(b)
	}
	if err == nil && b.Admin != "" {
		// Checked here too, so validate refuses what serve would.
		if aerr := admin.CheckAddress(b.Admin, o.adminNonLoop); aerr != nil {
			err = &resource.InvalidError{Fields: []resource.FieldError{{Path: "admin.address", Reason: strings.TrimPrefix(aerr.Error(), "admin: ")}}}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.mode == "validate" {
		fmt.Fprintf(stdout, "configuration '%s' OK\n", configName(o))
		return 0
	}

	level := o.logLevel
	switch level {
	case "warning":
		level = "warn"
	case "critical":
		level = "error"
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:            "outrigger",
		Level:           hclog.LevelFromString(level),
		Output:          stderr,
		JSONFormat:      o.logFormat == "json",
		IncludeLocation: false,
	})
	if o.serviceNode != "" {
		b.Node.ID = o.serviceNode
	}
	if o.serviceCluster != "" {
		b.Node.Cluster = o.serviceCluster
	}
	logger.Info("starting", "version", version, "node", b.Node.ID, "cluster", b.Node.Cluster)
	for _, path := range b.Ignored {
		logger.Info("ignoring operational field", "field", path)
	}

	if o.pprofAddr != "" {
		stopPprof, err := servePprof(ctx, o.pprofAddr, logger)
		if err != nil {
			logger.Error("cannot serve pprof", "address", o.pprofAddr, "error", err)
			return 1
		}
		defer stopPprof()
	}
	srv, err := server.New(server.Options{
		Logger:                logger,
		Bootstrap:             b,
		DrainTimeout:          o.drainTime,
		AdminAllowNonLoopback: o.adminNonLoop,
		Version:               version,
	})
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func configName(o *options) string {
	if o.configPath != "" {
		return o.configPath
	}
	return "--config-yaml"
}
