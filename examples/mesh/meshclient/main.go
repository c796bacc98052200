// Command meshclient is the mesh demo's caller. It knows nothing about the
// mesh: it calls an HTTP service and a gRPC service on local ports (its
// sidecar's upstream listeners) and reports which backend answered, so the
// demo can show traffic following Consul — a service-splitter change
// shifting the split live.
//
//	meshclient -http 127.0.0.1:9191 -grpc 127.0.0.1:9192 \
//	    -expect payments-v1=50,payments-v2=50 -tolerance 15 -timeout 30s
//
// With -expect it sends windows of -window requests until one window's
// split matches within -tolerance percentage points (exit 0) or -timeout
// passes (exit 1). Without -expect it prints one line per second until
// interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

type config struct {
	httpAddr  string
	grpcAddr  string
	window    int
	expect    map[string]float64
	tolerance float64
	timeout   time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "meshclient:", err)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	var expect string
	fs := flag.NewFlagSet("meshclient", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.httpAddr, "http", "127.0.0.1:9191", "local address of the HTTP upstream (GET /hello)")
	fs.StringVar(&cfg.grpcAddr, "grpc", "", "local address of the gRPC upstream (grpc.testing.TestService); empty skips gRPC")
	fs.IntVar(&cfg.window, "window", 100, "requests per window")
	fs.StringVar(&expect, "expect", "", "expected split as service=percent,...; empty runs until interrupted")
	fs.Float64Var(&cfg.tolerance, "tolerance", 15, "allowed deviation from -expect, in percentage points")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "how long to wait for -expect to hold")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.window < 1 {
		return config{}, fmt.Errorf("-window must be at least 1, got %d", cfg.window)
	}
	if expect != "" {
		m, err := parseExpect(expect)
		if err != nil {
			return config{}, err
		}
		cfg.expect = m
	}
	return cfg, nil
}

// parseExpect reads "a=50,b=50".
func parseExpect(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		name, pct, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("-expect: %q is not service=percent", part)
		}
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || v < 0 || v > 100 {
			return nil, fmt.Errorf("-expect: %q: percent must be 0-100", part)
		}
		out[name] = v
	}
	return out, nil
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg, err := parseFlags(args, errOut)
	if err != nil {
		return err
	}
	c := &caller{http: &http.Client{Timeout: 5 * time.Second}, url: "http://" + cfg.httpAddr + "/hello"}
	if cfg.grpcAddr != "" {
		conn, err := grpc.NewClient(cfg.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		c.grpc = testgrpc.NewTestServiceClient(conn)
	}
	if cfg.expect == nil {
		return c.forever(ctx, cfg, out)
	}
	return c.until(ctx, cfg, out)
}

type caller struct {
	http *http.Client
	url  string
	grpc testgrpc.TestServiceClient
}

// window sends n HTTP requests (and one gRPC call) and counts answers by
// the backend's service name; failures count under "error: ...".
func (c *caller) window(ctx context.Context, n int) (map[string]int, string) {
	counts := map[string]int{}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		counts[c.hello(ctx)]++
	}
	grpcFrom := ""
	if c.grpc != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.grpc.UnaryCall(cctx, &testgrpc.SimpleRequest{FillServerId: true})
		cancel()
		if err != nil {
			grpcFrom = "error: " + err.Error()
		} else {
			grpcFrom = resp.GetHostname()
		}
	}
	return counts, grpcFrom
}

func (c *caller) hello(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "error: connect"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Sprintf("error: HTTP %d", resp.StatusCode)
	}
	var body struct {
		Service string `json:"service"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Service == "" {
		return "error: bad body"
	}
	return body.Service
}

func (c *caller) until(ctx context.Context, cfg config, out io.Writer) error {
	deadline := time.Now().Add(cfg.timeout)
	for {
		counts, grpcFrom := c.window(ctx, cfg.window)
		line := format(counts, grpcFrom)
		if matches(counts, cfg.expect, cfg.tolerance) && !strings.HasPrefix(grpcFrom, "error") {
			fmt.Fprintf(out, "split as expected: %s\n", line)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("split did not reach %v within %v; last window: %s", cfg.expect, cfg.timeout, line)
		}
		fmt.Fprintf(out, "waiting for the split: %s\n", line)
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *caller) forever(ctx context.Context, cfg config, out io.Writer) error {
	for ctx.Err() == nil {
		start := time.Now()
		counts, grpcFrom := c.window(ctx, cfg.window)
		fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05"), format(counts, grpcFrom))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second - time.Since(start)):
		}
	}
	return nil
}

// matches reports whether every expected service got its share within
// tol points, and nothing else (errors included) answered.
func matches(counts map[string]int, expect map[string]float64, tol float64) bool {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return false
	}
	for name, n := range counts {
		if _, ok := expect[name]; !ok && n > 0 {
			return false
		}
	}
	for name, want := range expect {
		got := 100 * float64(counts[name]) / float64(total)
		if got < want-tol || got > want+tol {
			return false
		}
	}
	return true
}

func format(counts map[string]int, grpcFrom string) string {
	names := make([]string, 0, len(counts))
	total := 0
	for n, c := range counts {
		names = append(names, n)
		total += c
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d%%", n, 100*counts[n]/max(total, 1)))
	}
	s := "http: " + strings.Join(parts, ", ")
	if grpcFrom != "" {
		s += "; grpc answered by " + grpcFrom
	}
	return s
}
