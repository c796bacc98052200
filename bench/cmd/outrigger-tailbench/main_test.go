package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--rate", "100", "--duration", "2s", "--backoff-base", "5ms", "--out", "x.md"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Rate != 100 || o.cfg.Duration != 2*time.Second || o.cfg.BackoffBase != 5*time.Millisecond || o.out != "x.md" {
		t.Fatalf("options %+v", o)
	}
	if d, err := parseFlags(nil, &bytes.Buffer{}); err != nil || d.cfg.Budget() > d.deadline {
		t.Fatalf("defaults: %v (budget %v, deadline %v)", err, d.cfg.Budget(), d.deadline)
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--rate", "-1"}, "rate must be a positive number"},
		{[]string{"--retries", "0"}, "retries must be in"},
		{[]string{"--duration", "1m"}, "more than --deadline"},
		{[]string{"--deadline", "0s"}, "--deadline must be positive"},
		{[]string{"--out", ""}, "--out must name a file"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"extra"}, "unexpected arguments: extra"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		if _, err := parseFlags(tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("--help: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"--rate", "x"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "tail.md")
	stderr.Reset()
	if code := run(context.Background(), []string{"--outrigger", filepath.Join(dir, "missing"), "--out", out}, &stdout, &stderr); code != 1 {
		t.Errorf("missing binary: exit %d, want 1; stderr %s", code, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a report was written without any measurement")
	}

	// A proxy that exits at once: the direct row is measured, the run
	// fails, and the partial report goes next to the target, not over it.
	exits := filepath.Join(dir, "exits")
	if err := os.WriteFile(exits, []byte("#!/bin/sh\necho 'boom' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	args := []string{"--outrigger", exits, "--out", out, "--rate", "50", "--duration", "200ms", "--warmup", "0s", "--work", filepath.Join(dir, "work")}
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Fatalf("exiting proxy: exit %d, want 1; stderr %s", code, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run wrote the report itself")
	}
	partial, err := os.ReadFile(filepath.Join(dir, "tail.failed.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(partial), "| direct (client round robin, no proxy) |") || !strings.Contains(string(partial), "Incomplete run") {
		t.Errorf("partial report:\n%s", partial)
	}
	if !strings.Contains(stderr.String(), "boom") {
		t.Errorf("the proxy's output is not in the error: %s", stderr.String())
	}
}

// TestNoRepository: without --outrigger the command builds the proxy from
// the repository it runs in; outside one it says how to go on.
func TestNoRepository(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--out", "tail.md"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "or give --outrigger") {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
}
