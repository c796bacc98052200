// Command democlient sends the static demo's traffic through the proxy and
// prints what came back: HTTP/1.1 round robin, h2c, a streamed echo, gRPC
// unary and server streaming, a missing route and a direct response. It exits
// non-zero when anything differs from what examples/static/bootstrap.yaml
// promises, so the demo doubles as a smoke test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "democlient: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	proxy     string        // host:port of the proxy's HTTP listener (also serves gRPC)
	admin     string        // host:port of the proxy's admin API; empty skips the readiness wait
	requests  int           // HTTP/1.1 GETs to /hello
	instances int           // distinct httpapp instances those GETs must reach
	wait      time.Duration // how long to wait for admin /ready
	timeout   time.Duration // per-check deadline
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("democlient", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.proxy, "proxy", "127.0.0.1:10000", "proxy listener (host:port) for HTTP and gRPC traffic")
	fs.StringVar(&cfg.admin, "admin", "127.0.0.1:9901", "proxy admin address (host:port); empty skips waiting for /ready")
	fs.IntVar(&cfg.requests, "requests", 4, "number of HTTP/1.1 GET /hello requests")
	fs.IntVar(&cfg.instances, "instances", 2, "distinct backend instances the GETs must reach (0 to skip the check)")
	fs.DurationVar(&cfg.wait, "wait", 15*time.Second, "how long to wait for the admin /ready endpoint to return 200")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "deadline of each check")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case cfg.proxy == "":
		return config{}, errors.New("-proxy must not be empty")
	case cfg.requests < 1:
		return config{}, fmt.Errorf("-requests must be at least 1, got %d", cfg.requests)
	case cfg.instances < 0 || cfg.instances > cfg.requests:
		return config{}, fmt.Errorf("-instances must be between 0 and -requests (%d), got %d", cfg.requests, cfg.instances)
	case cfg.timeout <= 0:
		return config{}, fmt.Errorf("-timeout must be positive, got %v", cfg.timeout)
	}
	return cfg, nil
}

// errChecksFailed is returned when the demo ran but saw something unexpected.
var errChecksFailed = errors.New("some checks failed")

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg, err := parseFlags(args, errOut)
	if err != nil {
		return err
	}
	if cfg.admin != "" && cfg.wait > 0 {
		if err := waitReady(ctx, "http://"+cfg.admin+"/ready", cfg.wait); err != nil {
			return err
		}
	}
	c, err := newChecker(cfg)
	if err != nil {
		return err
	}
	defer c.close()
	r := &reporter{out: out}
	for _, ch := range c.checks() {
		r.run(ctx, ch.title, cfg.timeout, ch.fn)
	}
	return r.summary()
}

// check is one demonstration: it prints what it saw and returns an error when
// that was not what the demo's bootstrap promises.
type check struct {
	title string
	fn    func(ctx context.Context, p printer) error
}

// printer prints one indented line of a check's output.
type printer func(format string, args ...any)

// reporter runs checks, prints their output readably and counts failures.
type reporter struct {
	out    io.Writer
	passed int
	failed []string
}

func (r *reporter) run(ctx context.Context, title string, timeout time.Duration, fn func(context.Context, printer) error) {
	fmt.Fprintf(r.out, "\n== %s\n", title)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := fn(ctx, func(format string, args ...any) {
		fmt.Fprintf(r.out, "   "+format+"\n", args...)
	})
	if err != nil {
		fmt.Fprintf(r.out, "   FAIL: %v\n", err)
		r.failed = append(r.failed, title)
		return
	}
	fmt.Fprintln(r.out, "   ok")
	r.passed++
}

func (r *reporter) summary() error {
	total := r.passed + len(r.failed)
	if len(r.failed) == 0 {
		fmt.Fprintf(r.out, "\nall %d checks passed\n", total)
		return nil
	}
	fmt.Fprintf(r.out, "\n%d of %d checks failed:\n", len(r.failed), total)
	for _, t := range r.failed {
		fmt.Fprintf(r.out, "  - %s\n", t)
	}
	return fmt.Errorf("%w: %d of %d", errChecksFailed, len(r.failed), total)
}
