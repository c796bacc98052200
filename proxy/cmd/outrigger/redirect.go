package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/redirect"
)

const redirectUsage = `outrigger redirect-traffic: install the transparent-capture rules in this network
namespace (a pod's init step, run as root with NET_ADMIN): the app's outbound TCP goes to the
sidecar's outbound listener, inbound TCP to its public listener; the proxy's original-destination
support reads where each connection was going.

Usage:
  outrigger redirect-traffic -proxy-uid UID [flags]

Flags:
  -proxy-uid UID                the proxy's user; its traffic is never captured (required)
  -outbound-port N              outbound listener; 0 captures no outbound (default 15001)
  -inbound-port N               public listener; 0 captures no inbound (default 20000)
  -exclude-outbound-ports LIST  destination ports reached directly (comma-separated)
  -exclude-inbound-ports LIST   local ports reached directly (give the admin port, for probes)
  -exclude-outbound-cidrs LIST  destinations reached directly (comma-separated CIDRs)
  -exclude-uids LIST            more users whose traffic is not captured
  -backend auto|nftables|iptables
                                auto: nftables when nft is installed, else iptables (default auto)
  -dry-run                      print the rules instead of installing them
`

// runRedirect is the redirect-traffic subcommand.
func runRedirect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, backend, dryRun, err := parseRedirectFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger redirect-traffic:", err)
		return 1
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "outrigger redirect-traffic:", err)
		return 1
	}
	if backend == "auto" {
		backend = string(redirect.IPTables)
		if _, err := exec.LookPath("nft"); err == nil {
			backend = string(redirect.NFTables)
		}
	}
	if dryRun {
		switch redirect.Backend(backend) {
		case redirect.NFTables:
			fmt.Fprint(stdout, cfg.NFTRuleset())
		default:
			fmt.Fprintf(stdout, "# iptables-restore --noflush\n%s# ip6tables-restore --noflush\n%s", cfg.IPTablesRules(false), cfg.IPTablesRules(true))
		}
		return 0
	}
	if err := redirect.Apply(ctx, cfg, redirect.Backend(backend), nil); err != nil {
		fmt.Fprintln(stderr, "outrigger redirect-traffic:", err)
		return 1
	}
	fmt.Fprintf(stdout, "outrigger redirect-traffic: %s rules installed (outbound -> :%d, inbound -> :%d)\n", backend, cfg.OutboundPort, cfg.InboundPort)
	return 0
}

// parseRedirectFlags reads redirect-traffic's arguments.
func parseRedirectFlags(args []string, stderr io.Writer) (cfg redirect.Config, backend string, dryRun bool, err error) {
	fs := flag.NewFlagSet("outrigger redirect-traffic", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&cfg.ProxyUID, "proxy-uid", -1, "")
	fs.IntVar(&cfg.OutboundPort, "outbound-port", 15001, "")
	fs.IntVar(&cfg.InboundPort, "inbound-port", 20000, "")
	outPorts := fs.String("exclude-outbound-ports", "", "")
	inPorts := fs.String("exclude-inbound-ports", "", "")
	cidrs := fs.String("exclude-outbound-cidrs", "", "")
	uids := fs.String("exclude-uids", "", "")
	fs.StringVar(&backend, "backend", "auto", "")
	fs.BoolVar(&dryRun, "dry-run", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, redirectUsage)
			return cfg, "", false, err
		}
		return cfg, "", false, fmt.Errorf("%w (see -help)", err)
	}
	if fs.NArg() > 0 {
		return cfg, "", false, fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if cfg.ProxyUID == -1 {
		return cfg, "", false, errors.New("-proxy-uid is required: the proxy's user, whose traffic is never captured")
	}
	switch backend {
	case "auto", string(redirect.NFTables), string(redirect.IPTables):
	default:
		return cfg, "", false, fmt.Errorf("-backend %q: want auto, nftables or iptables", backend)
	}
	if cfg.ExcludeOutboundPorts, err = redirect.ParsePorts(*outPorts); err != nil {
		return cfg, "", false, fmt.Errorf("-exclude-outbound-ports: %w", err)
	}
	if cfg.ExcludeInboundPorts, err = redirect.ParsePorts(*inPorts); err != nil {
		return cfg, "", false, fmt.Errorf("-exclude-inbound-ports: %w", err)
	}
	if cfg.ExcludeOutboundCIDRs, err = redirect.ParseCIDRs(*cidrs); err != nil {
		return cfg, "", false, fmt.Errorf("-exclude-outbound-cidrs: %w", err)
	}
	for _, s := range strings.Split(*uids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		u, err := strconv.Atoi(s)
		if err != nil || u < 0 {
			return cfg, "", false, fmt.Errorf("-exclude-uids: %q is not a user ID", s)
		}
		cfg.ExcludeUIDs = append(cfg.ExcludeUIDs, u)
	}
	return cfg, backend, dryRun, nil
}
