// Package appmain is the common main of the example apps: the -addr and
// -name flags, a logger, the listener, and a clean stop on SIGINT/SIGTERM.
// Each app supplies only how it serves.
package appmain

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
)

// Config is what the command line selects.
type Config struct {
	Addr string
	Name string
}

// ServeFunc answers on ln until ctx ends, then stops gracefully. It owns ln.
type ServeFunc func(ctx context.Context, ln net.Listener, name string, logger hclog.Logger) error

// Main runs an app until a stop signal and exits non-zero on failure.
func Main(prog, defaultAddr string, serve ServeFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, prog, defaultAddr, os.Args[1:], os.Stderr, serve); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
}

// ParseFlags reads -addr (default defaultAddr) and -name (default prog).
func ParseFlags(prog, defaultAddr string, args []string, errOut io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.Addr, "addr", defaultAddr, "address to listen on (host:port)")
	fs.StringVar(&cfg.Name, "name", prog, "service name reported in responses")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.Name == "" {
		return Config{}, errors.New("-name must not be empty")
	}
	return cfg, nil
}

// Run parses args, listens on the configured address and serves until ctx
// ends.
func Run(ctx context.Context, prog, defaultAddr string, args []string, logOut io.Writer, serve ServeFunc) error {
	cfg, err := ParseFlags(prog, defaultAddr, args, logOut)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: cfg.Name, Output: logOut, Level: hclog.Info})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return serve(ctx, ln, cfg.Name, logger)
}
