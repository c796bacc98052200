package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The rules themselves are tested with a real netfilter in network
// namespaces in proxy/redirect; this covers the command line.
func TestRedirectTrafficDryRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"redirect-traffic", "-proxy-uid", "5995", "-backend", "nftables", "-dry-run",
		"-exclude-inbound-ports", "19000", "-exclude-outbound-ports", "5432", "-exclude-outbound-cidrs", "10.96.0.1/32", "-exclude-uids", "1001"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"table inet outrigger {", "meta skuid { 1001, 5995 } return", "tcp dport { 5432 } return",
		"ip daddr { 10.96.0.1/32 } return", "meta l4proto tcp redirect to :15001", "tcp dport { 19000 } return", "meta l4proto tcp redirect to :20000"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"redirect-traffic", "-proxy-uid", "5995", "-backend", "iptables", "-dry-run", "-inbound-port", "0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "-A OUTRIGGER_OUTPUT -p tcp -j REDIRECT --to-ports 15001") || strings.Contains(stdout.String(), "--to-ports 20000") {
		t.Errorf("iptables dry run:\n%s", stdout.String())
	}
}

func TestRedirectTrafficFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-proxy-uid is required"},
		{[]string{"-proxy-uid", "0"}, "proxy UID 0 (root)"},
		{[]string{"-proxy-uid", "5995", "-backend", "ebpf"}, `-backend "ebpf"`},
		{[]string{"-proxy-uid", "5995", "-exclude-outbound-ports", "http"}, `-exclude-outbound-ports: port "http"`},
		{[]string{"-proxy-uid", "5995", "-exclude-inbound-ports", "0"}, `-exclude-inbound-ports: port "0"`},
		{[]string{"-proxy-uid", "5995", "-exclude-outbound-cidrs", "10.0.0.1"}, `-exclude-outbound-cidrs: "10.0.0.1" is not a CIDR`},
		{[]string{"-proxy-uid", "5995", "-exclude-uids", "root"}, `-exclude-uids: "root" is not a user ID`},
		{[]string{"-proxy-uid", "5995", "-inbound-port", "0", "-outbound-port", "0"}, "nothing to capture"},
		{[]string{"-proxy-uid", "5995", "extra"}, `unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"redirect-traffic"}, tc.args...), &stdout, &stderr); code != 1 {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q, want %q", tc.args, stderr.String(), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"redirect-traffic", "-help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("-help: exit %d %q", code, stderr.String())
	}
}
