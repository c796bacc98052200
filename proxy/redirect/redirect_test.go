package redirect

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

func fullConfig() Config {
	return Config{
		ProxyUID:             5995,
		OutboundPort:         15001,
		InboundPort:          20000,
		ExcludeOutboundPorts: []int{5432, 6379},
		ExcludeInboundPorts:  []int{19000},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32"), netip.MustParsePrefix("fd00::5/64")},
		ExcludeUIDs:          []int{1001, 5995},
		IPv6:                 true,
	}
}

func TestNFTRuleset(t *testing.T) {
	want := `table inet outrigger
delete table inet outrigger
table inet outrigger {
	chain output {
		type nat hook output priority -100; policy accept;
		meta l4proto != tcp return
		meta skuid { 1001, 5995 } return
		oifname "lo" return
		ip daddr 127.0.0.0/8 return
		ip6 daddr ::1 return
		tcp dport { 5432, 6379 } return
		ip daddr { 10.96.0.1/32 } return
		ip6 daddr { fd00::/64 } return
		meta l4proto tcp redirect to :15001
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		meta l4proto != tcp return
		iifname "lo" return
		tcp dport { 19000 } return
		meta l4proto tcp redirect to :20000
	}
}
`
	if got := fullConfig().NFTRuleset(); got != want {
		t.Errorf("ruleset:\n%s\nwant:\n%s", got, want)
	}
	// IPv6 off (the default): IPv6 is left alone in both directions.
	v4only := fullConfig()
	v4only.IPv6 = false
	if got := v4only.NFTRuleset(); strings.Count(got, "meta nfproto ipv6 return") != 2 {
		t.Errorf("IPv4-only ruleset does not let IPv6 through in both chains:\n%s", got)
	}
	inboundOnly := Config{ProxyUID: 5995, InboundPort: 20000}.NFTRuleset()
	if strings.Contains(inboundOnly, "chain output") || !strings.Contains(inboundOnly, "redirect to :20000") {
		t.Errorf("inbound only:\n%s", inboundOnly)
	}
}

func TestIPTablesRules(t *testing.T) {
	want4 := `*nat
:OUTRIGGER_OUTPUT - [0:0]
:OUTRIGGER_INBOUND - [0:0]
-A OUTRIGGER_OUTPUT -m owner --uid-owner 1001 -j RETURN
-A OUTRIGGER_OUTPUT -m owner --uid-owner 5995 -j RETURN
-A OUTRIGGER_OUTPUT -o lo -j RETURN
-A OUTRIGGER_OUTPUT -d 127.0.0.0/8 -j RETURN
-A OUTRIGGER_OUTPUT -p tcp --dport 5432 -j RETURN
-A OUTRIGGER_OUTPUT -p tcp --dport 6379 -j RETURN
-A OUTRIGGER_OUTPUT -d 10.96.0.1/32 -j RETURN
-A OUTRIGGER_OUTPUT -p tcp -j REDIRECT --to-ports 15001
-A OUTRIGGER_INBOUND -i lo -j RETURN
-A OUTRIGGER_INBOUND -p tcp --dport 19000 -j RETURN
-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 20000
COMMIT
`
	if got := fullConfig().IPTablesRules(false); got != want4 {
		t.Errorf("IPv4 rules:\n%s\nwant:\n%s", got, want4)
	}
	got6 := fullConfig().IPTablesRules(true)
	for _, line := range []string{"-A OUTRIGGER_OUTPUT -d ::1/128 -j RETURN", "-A OUTRIGGER_OUTPUT -d fd00::/64 -j RETURN"} {
		if !strings.Contains(got6, line+"\n") {
			t.Errorf("IPv6 rules lack %q:\n%s", line, got6)
		}
	}
	if strings.Contains(got6, "10.96.0.1") {
		t.Errorf("IPv6 rules have an IPv4 CIDR:\n%s", got6)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"root", func(c *Config) { c.ProxyUID = 0 }, "proxy UID 0 (root)"},
		{"negative uid", func(c *Config) { c.ProxyUID = -1 }, "proxy UID -1 is negative"},
		{"nothing", func(c *Config) { c.OutboundPort, c.InboundPort = 0, 0 }, "nothing to capture"},
		{"outbound range", func(c *Config) { c.OutboundPort = 70000 }, "outbound port 70000"},
		{"excluded port", func(c *Config) { c.ExcludeInboundPorts = []int{0} }, "excluded inbound port 0"},
		{"excluded uid", func(c *Config) { c.ExcludeUIDs = []int{-2} }, "excluded UID -2"},
		{"cidr", func(c *Config) { c.ExcludeOutboundCIDRs = []netip.Prefix{{}} }, "CIDR is not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fullConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if err := Apply(context.Background(), c, NFTables, func(context.Context, string, string, ...string) ([]byte, error) {
				t.Fatal("a command ran for an invalid config")
				return nil, nil
			}); err == nil {
				t.Error("Apply accepted it")
			}
		})
	}
}

// recorder is a Runner that records commands and fails those fail says.
type recorder struct {
	cmds []string
	fail func(cmd string) error
}

func (r *recorder) run(_ context.Context, stdin, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	r.cmds = append(r.cmds, cmd)
	if r.fail != nil {
		if err := r.fail(cmd); err != nil {
			return []byte("boom output"), err
		}
	}
	return nil, nil
}

func TestApplyCommands(t *testing.T) {
	ctx := context.Background()
	r := &recorder{}
	if err := Apply(ctx, fullConfig(), NFTables, r.run); err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.cmds, "|") != "nft -f -" {
		t.Errorf("nftables commands = %q", r.cmds)
	}

	// iptables: rules per family, then each jump only when -C says it is missing.
	r = &recorder{fail: func(cmd string) error {
		if strings.Contains(cmd, " -C ") {
			return errors.New("exit status 1")
		}
		return nil
	}}
	if err := Apply(ctx, fullConfig(), IPTables, r.run); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables-restore --noflush",
		"iptables -w -t nat -C OUTPUT -p tcp -j OUTRIGGER_OUTPUT", "iptables -w -t nat -A OUTPUT -p tcp -j OUTRIGGER_OUTPUT",
		"iptables -w -t nat -C PREROUTING -p tcp -j OUTRIGGER_INBOUND", "iptables -w -t nat -A PREROUTING -p tcp -j OUTRIGGER_INBOUND",
		"ip6tables-restore --noflush",
		"ip6tables -w -t nat -C OUTPUT -p tcp -j OUTRIGGER_OUTPUT", "ip6tables -w -t nat -A OUTPUT -p tcp -j OUTRIGGER_OUTPUT",
		"ip6tables -w -t nat -C PREROUTING -p tcp -j OUTRIGGER_INBOUND", "ip6tables -w -t nat -A PREROUTING -p tcp -j OUTRIGGER_INBOUND",
	}
	if strings.Join(r.cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("iptables commands:\n%s\nwant:\n%s", strings.Join(r.cmds, "\n"), strings.Join(want, "\n"))
	}

	// Jumps already there (a re-run): nothing is appended.
	r = &recorder{}
	if err := Apply(ctx, Config{ProxyUID: 5995, OutboundPort: 15001}, IPTables, r.run); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.cmds {
		if strings.Contains(c, " -A ") || strings.Contains(c, "PREROUTING") {
			t.Errorf("re-run ran %q", c)
		}
		if strings.HasPrefix(c, "ip6tables") {
			t.Errorf("IPv6 left alone by default, but ran %q", c)
		}
	}

	// No ip6tables on the machine: IPv4 only.
	r = &recorder{fail: func(cmd string) error {
		if strings.HasPrefix(cmd, "ip6tables") {
			return &exec.Error{Name: "ip6tables-restore", Err: exec.ErrNotFound}
		}
		return nil
	}}
	if err := Apply(ctx, fullConfig(), IPTables, r.run); err != nil {
		t.Fatalf("without ip6tables: %v", err)
	}
}

func TestApplyErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		backend Backend
		failOn  string
		want    string
	}{
		{"nft fails", NFTables, "nft", "redirect: nft -f -: exit status 1: boom output"},
		{"restore fails", IPTables, "iptables-restore", "redirect: iptables-restore --noflush: exit status 1: boom output"},
		{"ip6 restore fails", IPTables, "ip6tables-restore", "redirect: ip6tables-restore --noflush: exit status 1"},
		{"jump fails", IPTables, "iptables -w -t nat -", "redirect: iptables -w -t nat -A OUTPUT -p tcp -j OUTRIGGER_OUTPUT: exit status 1"},
		{"unknown backend", "ebpf", "", `backend "ebpf" is not nftables or iptables`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{fail: func(cmd string) error {
				if tc.failOn != "" && strings.HasPrefix(cmd, tc.failOn) {
					return errors.New("exit status 1")
				}
				return nil
			}}
			err := Apply(ctx, fullConfig(), tc.backend, r.run)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	if p, err := ParsePorts(" 80, 443,,"); err != nil || len(p) != 2 || p[1] != 443 {
		t.Errorf("ParsePorts = %v, %v", p, err)
	}
	for _, bad := range []string{"x", "0", "65536", "-1"} {
		if _, err := ParsePorts(bad); err == nil || !strings.Contains(err.Error(), "is not a number 1-65535") {
			t.Errorf("ParsePorts(%q) err = %v", bad, err)
		}
	}
	if c, err := ParseCIDRs("10.0.0.0/8, fd00::/8"); err != nil || len(c) != 2 {
		t.Errorf("ParseCIDRs = %v, %v", c, err)
	}
	if _, err := ParseCIDRs("10.0.0.1"); err == nil || !strings.Contains(err.Error(), `"10.0.0.1" is not a CIDR`) {
		t.Errorf("ParseCIDRs err = %v", err)
	}
	if out, err := ExecRunner(context.Background(), "hi", "cat"); err != nil || string(out) != "hi" {
		t.Errorf("ExecRunner(cat) = %q, %v", out, err)
	}
}
