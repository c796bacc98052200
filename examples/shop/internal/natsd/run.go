// Package natsd is the natsd service of the shop example; its command is
// examples/shop/natsd, which only calls Run.
package natsd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

// readyTimeout bounds how long the server may take to accept clients.
const readyTimeout = 10 * time.Second

type config struct {
	addr, storeDir, monitorAddr string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", shopmain.Env("NATSD_ADDR", "127.0.0.1:4222"), "client listen address (env NATSD_ADDR)")
	fs.StringVar(&c.storeDir, "store-dir", shopmain.Env("NATSD_STORE_DIR", "nats-data"), "JetStream storage directory (env NATSD_STORE_DIR)")
	fs.StringVar(&c.monitorAddr, "monitor-addr", shopmain.Env("NATSD_MONITOR_ADDR", ""), "HTTP monitoring address (/varz, /jsz); empty disables it (env NATSD_MONITOR_ADDR)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.storeDir == "" {
		return config{}, errors.New("-store-dir must not be empty")
	}
	return c, nil
}

// options turns the config into server options.
func (c config) options() (*server.Options, error) {
	host, port, err := splitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %w", err)
	}
	o := &server.Options{
		ServerName: "shop-natsd",
		Host:       host, Port: port,
		JetStream: true, StoreDir: c.storeDir,
		NoSigs: true,
	}
	if c.monitorAddr != "" {
		if o.HTTPHost, o.HTTPPort, err = splitHostPort(c.monitorAddr); err != nil {
			return nil, fmt.Errorf("-monitor-addr: %w", err)
		}
	}
	return o, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q of %q: want 0..65535", p, addr)
	}
	return host, port, nil
}

// Run parses args (flags, with environment defaults), serves until ctx
// ends, then stops gracefully.
func Run(ctx context.Context, args []string, logger *slog.Logger) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if !s.ReadyForConnections(readyTimeout) {
		return fmt.Errorf("nats server not accepting clients on %s after %v", c.addr, readyTimeout)
	}
	logger.Info("listening", "url", s.ClientURL(), "store_dir", c.storeDir, "jetstream", s.JetStreamEnabled())
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}
