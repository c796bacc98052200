package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// options are the command line, in Envoy's shape.
type options struct {
	configPath     string
	configYAML     string
	mode           string
	logLevel       string
	logFormat      string
	serviceNode    string
	serviceCluster string
	drainTime      time.Duration
	adminNonLoop   bool
	pprofAddr      string
	version        bool
}

const usage = `outrigger: a service-mesh proxy configured with Envoy's v3 API.

Usage:
  outrigger -c bootstrap.yaml [flags]
  outrigger -c bootstrap.yaml --mode validate
  outrigger redirect-traffic [flags]   install transparent-capture rules (nftables or iptables; -h for its flags)

Flags:
  -c, --config-path FILE       Envoy bootstrap file (YAML or JSON)
      --config-yaml YAML       bootstrap YAML merged over the file (or used alone)
      --mode serve|validate    validate: check the config, exit 0 or 1 (default serve)
  -l, --log-level LEVEL        trace, debug, info, warn, error, off (default info)
      --log-format json|text   process log format (default text)
      --service-node ID        node id (overrides node.id)
      --service-cluster NAME   node cluster (overrides node.cluster)
      --drain-time-s N         seconds in-flight requests get on shutdown (default 30)
      --admin-allow-non-loopback
                               let the admin API bind a non-loopback address
      --pprof-address ADDR     serve Go's profiler on this loopback address
                               (default: $OUTRIGGER_PPROF, unset = off)
      --version                print the version and exit
  -h, --help                   this help
`

// parseFlags reads args (without the program name). It accepts both -flag
// and --flag, like Go's flag package, plus Envoy's short forms.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("outrigger", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.configPath, "c", "", "")
	fs.StringVar(&o.configPath, "config-path", "", "")
	fs.StringVar(&o.configYAML, "config-yaml", "", "")
	fs.StringVar(&o.mode, "mode", "serve", "")
	fs.StringVar(&o.logLevel, "l", "info", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.StringVar(&o.logFormat, "log-format", "text", "")
	fs.StringVar(&o.serviceNode, "service-node", "", "")
	fs.StringVar(&o.serviceCluster, "service-cluster", "", "")
	drain := fs.Float64("drain-time-s", 30, "")
	fs.BoolVar(&o.adminNonLoop, "admin-allow-non-loopback", false, "")
	fs.StringVar(&o.pprofAddr, "pprof-address", os.Getenv("OUTRIGGER_PPROF"), "")
	fs.BoolVar(&o.version, "version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return nil, err
		}
		return nil, fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *drain < 0 {
		return nil, fmt.Errorf("--drain-time-s must not be negative, got %v", *drain)
	}
	o.drainTime = time.Duration(*drain * float64(time.Second))
	switch o.mode {
	case "serve", "validate":
	default:
		return nil, fmt.Errorf("--mode must be serve or validate, got %q", o.mode)
	}
	switch o.logFormat {
	case "json", "text":
	default:
		return nil, fmt.Errorf("--log-format must be json or text, got %q", o.logFormat)
	}
	o.logLevel = strings.ToLower(o.logLevel)
	switch o.logLevel {
	case "trace", "debug", "info", "warn", "warning", "error", "critical", "off":
	default:
		return nil, fmt.Errorf("--log-level %q is not one of trace, debug, info, warn, error, off", o.logLevel)
	}
	if !o.version && o.configPath == "" && o.configYAML == "" {
		return nil, errors.New("no configuration: give -c FILE or --config-yaml (see --help)")
	}
	return o, nil
}
