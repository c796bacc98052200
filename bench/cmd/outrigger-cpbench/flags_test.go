package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/cpscale"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cases := o.cases()
	if len(cases) != 1 {
		t.Fatalf("%d default cases, want 1", len(cases))
	}
	c := cases[0]
	if c.Proxies != 1000 || c.Services != 10 || c.Upstreams != 2 || c.HubInstances != 3 || c.Shared || c.Delta ||
		c.StreamsPerConn != cpscale.DefaultStreamsPerConn || c.Changes != 5 || c.InProcess || c.WaitGC != 0 {
		t.Errorf("default case %+v", c)
	}
	if o.deadline != 5*time.Minute || o.outDir != "bench/results" || o.name != "cpscale" {
		t.Errorf("defaults: deadline %v out %s name %s", o.deadline, o.outDir, o.name)
	}
}

func TestParseFlagsCrossProduct(t *testing.T) {
	o, err := parseFlags([]string{"--proxies", "1000, 10000", "--mode", "sotw,delta", "--layout", "shared",
		"--streams-per-conn", "16,1", "--in-process", "--wait-gc", "3m", "--deadline", "20m"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cases := o.cases()
	if len(cases) != 8 {
		t.Fatalf("%d cases, want 2×2×2 = 8", len(cases))
	}
	if c := cases[0]; c.Proxies != 1000 || c.Delta || c.StreamsPerConn != 16 || !c.Shared || !c.InProcess || c.WaitGC != 3*time.Minute {
		t.Errorf("first case %+v", c)
	}
	if c := cases[7]; c.Proxies != 10000 || !c.Delta || c.StreamsPerConn != 1 {
		t.Errorf("last case %+v", c)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--proxies", "ten"}, "--proxies"},
		{[]string{"--proxies", "0"}, "--proxies"},
		{[]string{"--streams-per-conn", "0"}, "--streams-per-conn"},
		{[]string{"--layout", "mesh"}, "--layout"},
		{[]string{"--mode", "rest"}, "--mode"},
		{[]string{"--deadline", "0s"}, "--deadline"},
		{[]string{"--wait-gc", "-1s"}, "--wait-gc"},
		{[]string{"--changes", "-1"}, "--changes"},
		{[]string{"--name", "a/b"}, "--name"},
		{[]string{"--upstreams", "3"}, "upstreams 3"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--note", " "}, "empty note"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, err := parseFlags(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseFlags(%v) = %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestHelpAndExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "--streams-per-conn") {
		t.Errorf("--help: %v\n%s", err, stderr.String())
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &out); code != 0 {
		t.Errorf("--help exits %d", code)
	}
	if code := run(context.Background(), []string{"--mode", "rest"}, &out, &out); code != 2 {
		t.Errorf("a bad flag exits %d, want 2", code)
	}
}

// TestRunBenchFailsClearly: a Consul binary that does not start fails the
// case, and the report still records it.
func TestRunBenchFailsClearly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "consul")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'no agent here' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--proxies", "5", "--services", "1", "--consul", bad, "--outrigger-cp", bad,
		"--out", dir, "--name", "r", "--log-level", "error"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no agent here") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	rep, err := cpscale.ReadReport(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 1 || !strings.Contains(rep.Cases[0].Error, "no agent here") {
		t.Errorf("report cases %+v", rep.Cases)
	}
	// --append keeps the earlier case and command.
	code = run(context.Background(), []string{"--proxies", "6", "--services", "1", "--consul", bad, "--outrigger-cp", bad,
		"--out", dir, "--name", "r", "--append", "--log-level", "error"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	rep, err = cpscale.ReadReport(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 2 || len(rep.Commands) != 2 || rep.Cases[1].Proxies != 6 {
		t.Errorf("appended report: %d cases, commands %v", len(rep.Cases), rep.Commands)
	}
	if code := run(context.Background(), []string{"--consul", bad, "--outrigger-cp", bad, "--out", t.TempDir(), "--append"}, &stdout, &stderr); code != 1 {
		t.Errorf("--append without a report exits %d, want 1", code)
	}
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	rep := &cpscale.Report{Commands: []string{"x"}, Cases: []*cpscale.Result{{Proxies: 3, Services: 1, Mode: "sotw", Layout: "pods", Conns: 1}}}
	if _, err := rep.Write(dir, "r"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "r.md")); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"render", "--out", dir, "--name", "r", "--note", "quiet machine"}, &stdout, &stderr); code != 0 {
		t.Fatalf("render exits %d: %s", code, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "r.md")); err != nil || !strings.Contains(string(b), "sotw N=3 M=1 pods") ||
		!strings.Contains(string(b), "- quiet machine") {
		t.Errorf("rendered report: %v\n%s", err, b)
	}
	if code := run(context.Background(), []string{"render", "--out", dir, "--name", "absent"}, &stdout, &stderr); code != 1 {
		t.Errorf("render of a missing report exits %d, want 1", code)
	}
	if code := run(context.Background(), []string{"render", "--bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("render with a bad flag exits %d, want 2", code)
	}
}
