package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/backend"
)

// runBackend serves until ctx ends (SIGTERM from the harness).
func runBackend(ctx context.Context, args []string, stderr io.Writer) int {
	var cfg backend.Config
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:0", "HTTP/1.1 + h2c address")
	fs.StringVar(&cfg.GRPCAddr, "grpc", "127.0.0.1:0", "gRPC address")
	fs.IntVar(&cfg.PayloadSize, "payload", 128, "default response size in bytes")
	fs.DurationVar(&cfg.Delay, "delay", 0, "latency added to every response")
	fs.StringVar(&cfg.H3Addr, "h3", "", "HTTP/3 (UDP) address; needs --cert and --key")
	fs.StringVar(&cfg.CertFile, "cert", "", "TLS certificate (PEM) for HTTP/3")
	fs.StringVar(&cfg.KeyFile, "key", "", "TLS key (PEM) for HTTP/3")
	fs.StringVar(&cfg.TCPSourceAddr, "tcp-source", "", "raw TCP address that streams bytes to every connection")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Warn, Output: stderr})
	s, err := backend.Start(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "backend ready http=%s grpc=%s h3=%s tcp-source=%s\n", s.HTTPAddr(), s.GRPCAddr(), s.H3Addr(), s.TCPSourceAddr())
	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
