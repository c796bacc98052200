package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/outrigger-mesh/outrigger/bench/floor"
)

// runFloor serves the floor proxy (bench/floor) until ctx ends: the bench
// starts it as the go-floor target, and with --lean as go-lean.
func runFloor(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "HTTP/1.1 address")
	upstream := fs.String("upstream", "", "the backend's HTTP/1.1 host:port")
	lean := fs.Bool("lean", false, "do a proxy's per-request work on the heads' bytes (go-lean)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *upstream == "" {
		fmt.Fprintln(stderr, "floor: --upstream is required")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var p interface {
		Serve(net.Listener) error
		Close()
	}
	if *lean {
		p = floor.NewLean([]string{"/"}, []string{*upstream})
	} else {
		p = floor.New(*upstream)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintf(stderr, "floor ready http=%s upstream=%s lean=%t\n", ln.Addr(), *upstream, *lean)
	_ = p.Serve(ln)
	p.Close()
	return 0
}
