package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

// Defaults of the command line.
const (
	defaultConsulAddr = "127.0.0.1:8500"
	defaultXDSAddr    = "127.0.0.1:18000"
	defaultHTTPAddr   = "127.0.0.1:19000"
	defaultAdminAddr  = "127.0.0.1:19001"
)

const usage = `outrigger-cp: the Outrigger control plane: Consul in, xDS out.

Usage:
  outrigger-cp [flags]                  serve xDS from Consul
  outrigger-cp bootstrap -proxy-id ID   print an Envoy bootstrap for a sidecar or an ingress gateway
  outrigger-cp sidecar-init ...         register a Kubernetes pod's sidecar in Consul, write its bootstrap

Flags:
  -consul-addr HOST:PORT   Consul HTTP API (default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
  -xds-addr HOST:PORT      xDS gRPC listen address (default 127.0.0.1:18000)
  -http-addr HOST:PORT     /metrics, /healthz, /readyz, /debug/status, /debug/proxies (default 127.0.0.1:19000)
  -pprof                   also serve Go's profiler (net/http/pprof) at /debug/pprof/ on -http-addr (default off)
  -mesh-tls=false          serve sidecars plaintext: no Connect CA certificates, no mTLS, intentions not
                           enforced (default true; for a Consul whose Connect CA is off, or to debug)
  -dashboard-addr IP:PORT  serve the live dashboard (web page) here; off when empty (default off;
                           give a loopback address such as 127.0.0.1:19002 unless it is meant to be reachable)
  -log-level LEVEL         trace, debug, info, warn, error (default info)
  -log-format text|json    log format (default text)
` + injectUsage + `  -version                 print the version and exit
  -h, -help                this help
`

const bootstrapUsage = `outrigger-cp bootstrap: print an Envoy v3 bootstrap (YAML) for a registered sidecar.

Usage:
  outrigger-cp bootstrap -proxy-id ID [flags]

Flags:
  -proxy-id ID             the sidecar's or ingress gateway's Consul service ID (required)
  -xds-addr HOST:PORT      where the proxy reaches outrigger-cp's xDS (default 127.0.0.1:18000)
  -admin-addr IP:PORT      the proxy's admin listener (default 127.0.0.1:19001)
  -consul-addr HOST:PORT   Consul HTTP API (default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
`

// options is the serving command line.
type options struct {
	consulAddr string
	xdsAddr    string
	httpAddr   string
	dashAddr   string // the dashboard's listen address, "" for none
	pprof      bool   // mount net/http/pprof on the HTTP address
	meshTLS    bool   // mTLS and intentions between sidecars (default true)
	logLevel   hclog.Level
	logJSON    bool
	version    bool
	inject     injectOptions // the Kubernetes sidecar injector
}

// bootstrapOptions is the bootstrap subcommand's command line.
type bootstrapOptions struct {
	proxyID    string
	xdsAddr    string
	adminAddr  string
	consulAddr string
}

// consulAddrFlag registers -consul-addr; resolve gives the flag, else
// $CONSUL_HTTP_ADDR, else the default.
func consulAddrFlag(fs *flag.FlagSet) (resolve func() string) {
	addr := fs.String("consul-addr", defaultConsulAddr, "")
	return func() string {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "consul-addr" })
		if !set {
			if env := os.Getenv("CONSUL_HTTP_ADDR"); env != "" {
				return env
			}
		}
		return *addr
	}
}

// parse runs fs over args and refuses positional arguments.
func parse(fs *flag.FlagSet, args []string, help string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, help)
			return err
		}
		return fmt.Errorf("%w (see -help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	return nil
}

// parseFlags reads the serving command line (without the program name).
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("outrigger-cp", flag.ContinueOnError)
	consul := consulAddrFlag(fs)
	fs.StringVar(&o.xdsAddr, "xds-addr", defaultXDSAddr, "")
	fs.StringVar(&o.httpAddr, "http-addr", defaultHTTPAddr, "")
	fs.StringVar(&o.dashAddr, "dashboard-addr", "", "")
	fs.BoolVar(&o.pprof, "pprof", false, "")
	fs.BoolVar(&o.meshTLS, "mesh-tls", true, "")
	level := fs.String("log-level", "info", "")
	format := fs.String("log-format", "text", "")
	fs.BoolVar(&o.version, "version", false, "")
	injectFlags(fs, &o.inject)
	if err := parse(fs, args, usage, stderr); err != nil {
		return nil, err
	}
	if err := o.inject.validate(); err != nil {
		return nil, err
	}
	o.consulAddr = consul()
	if o.logLevel = hclog.LevelFromString(*level); o.logLevel == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", *level)
	}
	switch *format {
	case "text":
	case "json":
		o.logJSON = true
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", *format)
	}
	return o, nil
}

// parseBootstrapFlags reads the bootstrap subcommand's arguments.
func parseBootstrapFlags(args []string, stderr io.Writer) (*bootstrapOptions, error) {
	o := &bootstrapOptions{}
	fs := flag.NewFlagSet("outrigger-cp bootstrap", flag.ContinueOnError)
	fs.StringVar(&o.proxyID, "proxy-id", "", "")
	fs.StringVar(&o.xdsAddr, "xds-addr", defaultXDSAddr, "")
	fs.StringVar(&o.adminAddr, "admin-addr", defaultAdminAddr, "")
	consul := consulAddrFlag(fs)
	if err := parse(fs, args, bootstrapUsage, stderr); err != nil {
		return nil, err
	}
	o.consulAddr = consul()
	if o.proxyID == "" {
		return nil, errors.New("-proxy-id is required: the sidecar's Consul service ID (see -help)")
	}
	return o, nil
}
