// Package redirect builds and installs the netfilter rules of transparent
// capture in a pod's network namespace (what `outrigger redirect-traffic`
// runs as an init step, as Consul's `consul connect redirect-traffic`
// does): the app's outbound TCP goes to the sidecar's outbound listener,
// inbound TCP to its public listener, except excluded ports, CIDRs and the
// proxy's own traffic (by UID, so the proxy's connections upstream are not
// captured again). The proxy then reads the original destination with
// proxy/origdst.
//
// Two backends render the same rules: nftables (one table, "inet
// outrigger", replaced atomically by `nft -f -`) and iptables
// (OUTRIGGER_* chains in the nat table through iptables-restore, for IPv4
// and, when ip6tables is present, IPv6).
package redirect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Backend names a netfilter front end.
type Backend string

// The backends.
const (
	NFTables Backend = "nftables"
	IPTables Backend = "iptables"
)

// Names of what the rules install.
const (
	// Table is the nftables table (family inet).
	Table = "outrigger"
	// ChainOutput and ChainInbound are the iptables nat chains.
	ChainOutput  = "OUTRIGGER_OUTPUT"
	ChainInbound = "OUTRIGGER_INBOUND"
)

// Config says what to capture and where to send it.
type Config struct {
	// ProxyUID is the proxy's user ID; its traffic is never captured.
	ProxyUID int
	// OutboundPort is the sidecar's outbound listener (captured outbound
	// TCP goes to 127.0.0.1/[::1] on this port); 0 captures no outbound.
	OutboundPort int
	// InboundPort is the sidecar's public listener (captured inbound TCP
	// goes here); 0 captures no inbound.
	InboundPort int
	// ExcludeOutboundPorts are destination ports the app reaches directly.
	ExcludeOutboundPorts []int
	// ExcludeInboundPorts are local ports reached directly (the proxy's
	// admin port, so the kubelet's probes are not captured).
	ExcludeInboundPorts []int
	// ExcludeOutboundCIDRs are destinations reached directly.
	ExcludeOutboundCIDRs []netip.Prefix
	// ExcludeUIDs are more users whose traffic is not captured.
	ExcludeUIDs []int
	// IPv6 captures IPv6 TCP as well, to [::1] on the same ports. Off by
	// default: the sidecar's listeners that outrigger-cp configures are
	// IPv4 (127.0.0.1 and the pod's address), so captured IPv6 would meet
	// no listener; uncaptured, IPv6 traffic goes direct.
	IPv6 bool
}

// Validate reports the first problem of c.
func (c Config) Validate() error {
	if c.ProxyUID < 0 {
		return fmt.Errorf("redirect: proxy UID %d is negative", c.ProxyUID)
	}
	if c.ProxyUID == 0 {
		return errors.New("redirect: proxy UID 0 (root) would exempt every root process from capture: run the proxy as its own user")
	}
	if c.OutboundPort == 0 && c.InboundPort == 0 {
		return errors.New("redirect: neither an outbound nor an inbound port: nothing to capture")
	}
	for _, p := range []struct {
		name string
		port int
	}{{"outbound", c.OutboundPort}, {"inbound", c.InboundPort}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("redirect: %s port %d is not 1-65535", p.name, p.port)
		}
	}
	for _, list := range []struct {
		name  string
		ports []int
	}{{"excluded outbound", c.ExcludeOutboundPorts}, {"excluded inbound", c.ExcludeInboundPorts}} {
		for _, p := range list.ports {
			if p < 1 || p > 65535 {
				return fmt.Errorf("redirect: %s port %d is not 1-65535", list.name, p)
			}
		}
	}
	for _, u := range c.ExcludeUIDs {
		if u < 0 {
			return fmt.Errorf("redirect: excluded UID %d is negative", u)
		}
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		if !p.IsValid() {
			return errors.New("redirect: an excluded CIDR is not valid")
		}
	}
	return nil
}

// uids is the proxy's UID and the other exempt ones, sorted, unique.
func (c Config) uids() []int {
	u := append([]int{c.ProxyUID}, c.ExcludeUIDs...)
	slices.Sort(u)
	return slices.Compact(u)
}

// cidrs splits the excluded CIDRs by family.
func (c Config) cidrs() (v4, v6 []string) {
	for _, p := range c.ExcludeOutboundCIDRs {
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	return v4, v6
}

// set renders an nftables anonymous set of numbers.
func set[T int | string](items []T) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = fmt.Sprint(it)
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// NFTRuleset is the `nft -f` input: it replaces the table atomically (the
// first two lines make re-running it idempotent).
func (c Config) NFTRuleset() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", Table, Table, Table)
	if c.OutboundPort != 0 {
		v4, v6 := c.cidrs()
		b.WriteString("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n")
		b.WriteString("\t\tmeta l4proto != tcp return\n")
		if !c.IPv6 {
			b.WriteString("\t\tmeta nfproto ipv6 return\n")
		}
		fmt.Fprintf(&b, "\t\tmeta skuid %s return\n", set(c.uids()))
		// Loopback: the app's explicit upstreams (127.0.0.1:port) and
		// anything local stay as they are.
		b.WriteString("\t\toifname \"lo\" return\n")
		b.WriteString("\t\tip daddr 127.0.0.0/8 return\n\t\tip6 daddr ::1 return\n")
		if len(c.ExcludeOutboundPorts) > 0 {
			fmt.Fprintf(&b, "\t\ttcp dport %s return\n", set(c.ExcludeOutboundPorts))
		}
		if len(v4) > 0 {
			fmt.Fprintf(&b, "\t\tip daddr %s return\n", set(v4))
		}
		if len(v6) > 0 {
			fmt.Fprintf(&b, "\t\tip6 daddr %s return\n", set(v6))
		}
		fmt.Fprintf(&b, "\t\tmeta l4proto tcp redirect to :%d\n\t}\n", c.OutboundPort)
	}
	if c.InboundPort != 0 {
		b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n")
		b.WriteString("\t\tmeta l4proto != tcp return\n")
		if !c.IPv6 {
			b.WriteString("\t\tmeta nfproto ipv6 return\n")
		}
		b.WriteString("\t\tiifname \"lo\" return\n")
		if len(c.ExcludeInboundPorts) > 0 {
			fmt.Fprintf(&b, "\t\ttcp dport %s return\n", set(c.ExcludeInboundPorts))
		}
		fmt.Fprintf(&b, "\t\tmeta l4proto tcp redirect to :%d\n\t}\n", c.InboundPort)
	}
	b.WriteString("}\n")
	return b.String()
}

// IPTablesRules is the iptables-restore input (run with --noflush) of one
// family (v6: for ip6tables-restore). Declaring the chains flushes them, so
// re-running it replaces their rules; the jumps from OUTPUT and PREROUTING
// are added separately, once (see Apply).
func (c Config) IPTablesRules(v6 bool) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ChainOutput, ChainInbound)
	if c.OutboundPort != 0 {
		cidr4, cidr6 := c.cidrs()
		for _, u := range c.uids() {
			fmt.Fprintf(&b, "-A %s -m owner --uid-owner %d -j RETURN\n", ChainOutput, u)
		}
		fmt.Fprintf(&b, "-A %s -o lo -j RETURN\n", ChainOutput)
		loop, cidrs := "127.0.0.0/8", cidr4
		if v6 {
			loop, cidrs = "::1/128", cidr6
		}
		fmt.Fprintf(&b, "-A %s -d %s -j RETURN\n", ChainOutput, loop)
		for _, p := range c.ExcludeOutboundPorts {
			fmt.Fprintf(&b, "-A %s -p tcp --dport %d -j RETURN\n", ChainOutput, p)
		}
		for _, cidr := range cidrs {
			fmt.Fprintf(&b, "-A %s -d %s -j RETURN\n", ChainOutput, cidr)
		}
		fmt.Fprintf(&b, "-A %s -p tcp -j REDIRECT --to-ports %d\n", ChainOutput, c.OutboundPort)
	}
	if c.InboundPort != 0 {
		fmt.Fprintf(&b, "-A %s -i lo -j RETURN\n", ChainInbound)
		for _, p := range c.ExcludeInboundPorts {
			fmt.Fprintf(&b, "-A %s -p tcp --dport %d -j RETURN\n", ChainInbound, p)
		}
		fmt.Fprintf(&b, "-A %s -p tcp -j REDIRECT --to-ports %d\n", ChainInbound, c.InboundPort)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Runner runs a command with stdin and returns its combined output.
// ExecRunner runs it on this machine; tests run it in a network namespace.
type Runner func(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)

// ExecRunner runs the command with os/exec.
func ExecRunner(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Apply validates c and installs its rules with backend through run (nil:
// ExecRunner). Running it again replaces the rules.
func Apply(ctx context.Context, c Config, backend Backend, run Runner) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if run == nil {
		run = ExecRunner
	}
	do := func(stdin, name string, args ...string) error {
		out, err := run(ctx, stdin, name, args...)
		if err != nil {
			return fmt.Errorf("redirect: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	switch backend {
	case NFTables:
		return do(c.NFTRuleset(), "nft", "-f", "-")
	case IPTables:
		families := []struct {
			v6                bool
			iptables, restore string
		}{{false, "iptables", "iptables-restore"}, {true, "ip6tables", "ip6tables-restore"}}
		for _, f := range families {
			if f.v6 && !c.IPv6 {
				continue
			}
			if out, err := run(ctx, c.IPTablesRules(f.v6), f.restore, "--noflush"); err != nil {
				if f.v6 && errors.Is(err, exec.ErrNotFound) {
					continue // no IPv6 tooling on this machine: IPv4 only
				}
				return fmt.Errorf("redirect: %s --noflush: %w: %s", f.restore, err, strings.TrimSpace(string(out)))
			}
			jumps := []struct {
				chain, target string
				on            bool
			}{{"OUTPUT", ChainOutput, c.OutboundPort != 0}, {"PREROUTING", ChainInbound, c.InboundPort != 0}}
			for _, j := range jumps {
				if !j.on {
					continue
				}
				rule := []string{j.chain, "-p", "tcp", "-j", j.target}
				if _, err := run(ctx, "", f.iptables, append([]string{"-w", "-t", "nat", "-C"}, rule...)...); err == nil {
					continue // already there
				}
				if err := do("", f.iptables, append([]string{"-w", "-t", "nat", "-A"}, rule...)...); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("redirect: backend %q is not %s or %s", backend, NFTables, IPTables)
}

// ParsePorts reads a comma-separated port list ("" is none).
func ParsePorts(s string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := strconv.Atoi(item)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("port %q is not a number 1-65535", item)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseCIDRs reads a comma-separated CIDR list ("" is none).
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (such as 10.0.0.0/8)", item)
		}
		out = append(out, p)
	}
	return out, nil
}
