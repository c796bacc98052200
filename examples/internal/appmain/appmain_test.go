package appmain

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: Config{Addr: "127.0.0.1:8081", Name: "app"}},
		{name: "set", args: []string{"-addr", "127.0.0.1:9", "-name", "b"}, want: Config{Addr: "127.0.0.1:9", Name: "b"}},
		{name: "empty name", args: []string{"-name="}, wantErr: "-name must not be empty"},
		{name: "stray argument", args: []string{"x"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-bogus"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlags("app", "127.0.0.1:8081", tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestRunReportsBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serve := func(context.Context, net.Listener, string, hclog.Logger) error {
		t.Fatal("serve called although the port is busy")
		return nil
	}
	err = Run(context.Background(), "app", "127.0.0.1:0", []string{"-addr", ln.Addr().String()}, io.Discard, serve)
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("err = %v, want a wrapped listen error naming the address", err)
	}
}
