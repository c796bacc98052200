// Command outrigger-bench measures outrigger against direct traffic, nginx,
// HAProxy and Caddy in the same run and writes bench/results/latest.md.
//
//	outrigger-bench [--quick] [--reps N] [--targets a,b] [--scenarios a,b] [--profile]
//	outrigger-bench backend --http ADDR --grpc ADDR   (the upstream; the bench starts it)
//	outrigger-bench floor [--lean] --listen ADDR --upstream ADDR   (the go-floor and go-lean targets; the bench starts them)
//	outrigger-bench render --in bench/results/latest.json   (redraw the report from a run)
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "backend":
			return runBackend(ctx, args[1:], stderr)
		case "floor":
			return runFloor(ctx, args[1:], stderr)
		case "render":
			return runRender(args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-bench:", err)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.LevelFromString(o.logLevel), Output: stderr})
	path, err := runBench(ctx, o, strings.Join(append([]string{"outrigger-bench"}, args...), " "), logger)
	if err != nil {
		logger.Error("bench failed", "error", err)
		return 1
	}
	fmt.Fprintln(stdout, "wrote", path)
	return 0
}
