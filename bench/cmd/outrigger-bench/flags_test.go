package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/harness"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*testing.T, *options)
		wantErr bool
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o *options) {
			if o.reps != 3 || o.name != "latest" || o.maxDuration != 15*time.Minute || !o.crossCheck || len(o.targets) != 6 {
				t.Errorf("%+v", o)
			}
			if len(o.selectScenarios()) != len(harness.FullScenarios()) || len(o.selectScenarios()) != 6 {
				t.Errorf("full run has %d scenarios", len(o.selectScenarios()))
			}
		}},
		{name: "quick", args: []string{"--quick"}, check: func(t *testing.T, o *options) {
			if o.reps != 1 || o.name != "quick" || o.maxDuration != time.Minute || slices.Contains(o.targets, "outrigger-2hop") {
				t.Errorf("%+v", o)
			}
			if len(o.selectScenarios()) != 1 {
				t.Errorf("quick run has %d scenarios", len(o.selectScenarios()))
			}
		}},
		{name: "subsets", args: []string{"--targets", "direct, haproxy", "--scenarios", "grpc-unary", "--reps", "2", "--no-crosscheck"}, check: func(t *testing.T, o *options) {
			if !slices.Equal(o.targets, []string{"direct", "haproxy"}) || o.reps != 2 || o.crossCheck {
				t.Errorf("%+v", o)
			}
			if s := o.selectScenarios(); len(s) != 1 || s[0].Name != "grpc-unary" {
				t.Errorf("scenarios %v", s)
			}
		}},
		{name: "protocols", args: []string{"--scenarios", "small-h3,tcp-bulk", "--name", "protocols"}, check: func(t *testing.T, o *options) {
			s := o.selectScenarios()
			if len(s) != 2 || s[0].Name != "small-h3" || s[1].Name != "tcp-bulk" || o.name != "protocols" {
				t.Errorf("scenarios %v, name %s", s, o.name)
			}
		}},
		{name: "quick protocols", args: []string{"--quick", "--scenarios", "small-h3,tcp-bulk"}, check: func(t *testing.T, o *options) {
			s := o.selectScenarios()
			if len(s) != 2 || s[0].ClosedDuration > 2*time.Second || s[0].OpenDuration > time.Second {
				t.Errorf("scenarios %+v", s)
			}
		}},
		{name: "mtls comparison", args: []string{"--scenarios", "grpc-unary", "--targets", "direct,outrigger-2hop,outrigger-2hop-mtls",
			"--rate", "1000", "--open-duration", "10s", "--no-closed", "--profile-target", "outrigger-2hop,outrigger-2hop-mtls"}, check: func(t *testing.T, o *options) {
			s := o.selectScenarios()
			if len(s) != 1 || !slices.Equal(s[0].OpenRates, []float64{1000}) || s[0].OpenDuration != 10*time.Second ||
				s[0].ClosedDuration != 0 || s[0].CrossCheck != "" {
				t.Errorf("scenarios %+v", s)
			}
			if len(o.targets) != 3 || !slices.Equal(o.profileTargets, []string{"outrigger-2hop", "outrigger-2hop-mtls"}) {
				t.Errorf("%+v", o)
			}
		}},
		{name: "rate on a closed-loop-only scenario", args: []string{"--scenarios", "tcp-bulk", "--rate", "500"}, check: func(t *testing.T, o *options) {
			if s := o.selectScenarios(); len(s) != 1 || !slices.Equal(s[0].OpenRates, []float64{500}) || s[0].OpenDuration != 2*time.Second {
				t.Errorf("scenarios %+v", s)
			}
		}},
		{name: "no closed drops closed-only scenarios", args: []string{"--scenarios", "tcp-bulk,grpc-unary", "--no-closed"}, check: func(t *testing.T, o *options) {
			if s := o.selectScenarios(); len(s) != 1 || s[0].Name != "grpc-unary" {
				t.Errorf("scenarios %+v", s)
			}
		}},
		{name: "default targets leave out mtls", args: nil, check: func(t *testing.T, o *options) {
			if slices.Contains(o.targets, "outrigger-2hop-mtls") || slices.Contains(o.targets, "outrigger-2hop-ab") {
				t.Errorf("targets %v", o.targets)
			}
			if o.abReps != o.reps {
				t.Errorf("A/B repetitions %d, want --reps's %d", o.abReps, o.reps)
			}
		}},
		{name: "A/B repetitions", args: []string{"--targets", "outrigger-2hop-ab,outrigger-2hop", "--reps", "5", "--ab-reps", "30"}, check: func(t *testing.T, o *options) {
			if o.reps != 5 || o.abReps != 30 || !slices.Equal(o.targets, []string{"outrigger-2hop-ab", "outrigger-2hop"}) {
				t.Errorf("%+v", o)
			}
		}},
		{name: "negative A/B reps", args: []string{"--ab-reps", "-2"}, wantErr: true},
		{name: "negative rate", args: []string{"--rate", "-1"}, wantErr: true},
		{name: "negative open duration", args: []string{"--open-duration", "-1s"}, wantErr: true},
		{name: "negative profile seconds", args: []string{"--profile-seconds", "-1"}, wantErr: true},
		{name: "profile of a peer", args: []string{"--profile-target", "haproxy"}, wantErr: true},
		{name: "unknown target", args: []string{"--targets", "envoy"}, wantErr: true},
		{name: "unknown scenario", args: []string{"--scenarios", "h3"}, wantErr: true},
		{name: "negative reps", args: []string{"--reps", "-1"}, wantErr: true},
		{name: "negative delay", args: []string{"--backend-delay", "-1s"}, wantErr: true},
		{name: "stray argument", args: []string{"now"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
	if _, err := parseFlags([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}
