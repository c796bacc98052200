package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		want    options
		wantErr string
	}{
		{name: "defaults", want: options{meshTLS: true, consulAddr: defaultConsulAddr, xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, logLevel: hclog.Info}},
		{name: "env", env: "10.0.0.5:8500",
			want: options{meshTLS: true, consulAddr: "10.0.0.5:8500", xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, logLevel: hclog.Info}},
		{name: "flag beats env", env: "10.0.0.5:8500", args: []string{"-consul-addr", "127.0.0.1:9500"},
			want: options{meshTLS: true, consulAddr: "127.0.0.1:9500", xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, logLevel: hclog.Info}},
		{name: "all", args: []string{"-xds-addr", ":18001", "--http-addr=:19002", "-log-level", "debug", "-log-format", "json", "--version"},
			want: options{meshTLS: true, consulAddr: defaultConsulAddr, xdsAddr: ":18001", httpAddr: ":19002", logLevel: hclog.Debug, logJSON: true, version: true}},
		{name: "dashboard", args: []string{"-dashboard-addr", "127.0.0.1:19002"},
			want: options{meshTLS: true, consulAddr: defaultConsulAddr, xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, dashAddr: "127.0.0.1:19002", logLevel: hclog.Info}},
		{name: "pprof", args: []string{"-pprof"},
			want: options{meshTLS: true, consulAddr: defaultConsulAddr, xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, pprof: true, logLevel: hclog.Info}},
		{name: "mesh TLS off", args: []string{"-mesh-tls=false"},
			want: options{consulAddr: defaultConsulAddr, xdsAddr: defaultXDSAddr, httpAddr: defaultHTTPAddr, logLevel: hclog.Info}},
		{name: "bad level", args: []string{"-log-level", "loud"}, wantErr: `-log-level "loud"`},
		{name: "bad format", args: []string{"-log-format", "xml"}, wantErr: `-log-format "xml"`},
		{name: "unknown flag", args: []string{"-frobnicate"}, wantErr: "frobnicate"},
		{name: "positional", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CONSUL_HTTP_ADDR", tc.env)
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *o != tc.want {
				t.Errorf("got %+v, want %+v", *o, tc.want)
			}
		})
	}
}

func TestParseBootstrapFlags(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "10.1.1.1:8500")
	o, err := parseBootstrapFlags([]string{"-proxy-id", "web-sidecar-proxy"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := bootstrapOptions{proxyID: "web-sidecar-proxy", xdsAddr: defaultXDSAddr, adminAddr: defaultAdminAddr, consulAddr: "10.1.1.1:8500"}
	if *o != want {
		t.Errorf("got %+v, want %+v", *o, want)
	}
	if _, err := parseBootstrapFlags(nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-proxy-id is required") {
		t.Errorf("missing -proxy-id: %v", err)
	}
	var help bytes.Buffer
	if _, err := parseBootstrapFlags([]string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "-admin-addr") {
		t.Errorf("-h: %v %q", err, help.String())
	}
}

func TestRunExits(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"--version"}, 0, "outrigger-cp dev", ""},
		{"help", []string{"-help"}, 0, "", "outrigger-cp bootstrap -proxy-id ID"},
		{"bad flag", []string{"-nope"}, 1, "", "outrigger-cp: flag provided but not defined: -nope"},
		{"busy xds port", []string{"-xds-addr", busy.Addr().String(), "-http-addr", "127.0.0.1:0"}, 1, "",
			"cannot listen for xDS: address=" + busy.Addr().String()},
		{"busy http port", []string{"-xds-addr", "127.0.0.1:0", "-http-addr", busy.Addr().String()}, 1, "",
			"cannot listen for HTTP: address=" + busy.Addr().String()},
		{"busy dashboard port", []string{"-xds-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-dashboard-addr", busy.Addr().String()}, 1, "",
			"cannot listen for the dashboard: address=" + busy.Addr().String()},
		{"bad consul address", []string{"-consul-addr", "ftp://127.0.0.1:1"}, 1, "", "consul at ftp://127.0.0.1:1"},
		{"bootstrap without id", []string{"bootstrap"}, 1, "", "-proxy-id is required"},
		{"bootstrap help", []string{"bootstrap", "-h"}, 0, "", "outrigger-cp bootstrap -proxy-id ID [flags]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
}
