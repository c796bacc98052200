package backend

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := Start(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "ok", cfg: Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 10}},
		{name: "no grpc address", cfg: Config{HTTPAddr: "127.0.0.1:0"}, wantErr: true},
		{name: "negative payload", cfg: Config{HTTPAddr: "a", GRPCAddr: "b", PayloadSize: -1}, wantErr: true},
		{name: "payload too large", cfg: Config{HTTPAddr: "a", GRPCAddr: "b", PayloadSize: MaxPayload + 1}, wantErr: true},
		{name: "negative delay", cfg: Config{HTTPAddr: "a", GRPCAddr: "b", Delay: -time.Second}, wantErr: true},
		{name: "h3 without certificate", cfg: Config{HTTPAddr: "a", GRPCAddr: "b", H3Addr: "c"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	s := start(t, Config{PayloadSize: 7})
	base := "http://" + s.HTTPAddr()
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantLen    int
		wantBody   string
	}{
		{name: "default size", method: "GET", path: "/", wantStatus: 200, wantLen: 7},
		{name: "size from query", method: "GET", path: "/?size=1000", wantStatus: 200, wantLen: 1000},
		{name: "echo", method: "POST", path: "/echo", body: "hello bench", wantStatus: 200, wantLen: 11, wantBody: "hello bench"},
		{name: "bad size", method: "GET", path: "/?size=-3", wantStatus: 400},
		{name: "size too large", method: "GET", path: "/?size=999999999", wantStatus: 400},
		{name: "bad delay", method: "GET", path: "/?delay=soon", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body = http.NoBody
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			if len(b) != tt.wantLen || (tt.wantBody != "" && string(b) != tt.wantBody) {
				t.Errorf("body %q (%d bytes), want %d bytes %q", b, len(b), tt.wantLen, tt.wantBody)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	s := start(t, Config{Delay: 30 * time.Millisecond})
	begin := time.Now()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("answered in %v, want ≥ 30ms", d)
	}
	begin = time.Now()
	resp, err = http.Get("http://" + s.HTTPAddr() + "/?delay=0s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(begin); d >= 30*time.Millisecond {
		t.Errorf("delay=0s override answered in %v", d)
	}
}

func TestH2C(t *testing.T) {
	s := start(t, Config{PayloadSize: 5})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post("http://"+s.HTTPAddr()+"/echo", "x", bytes.NewReader(make([]byte, 100000)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || len(b) != 100000 {
		t.Errorf("proto %s, %d bytes; want HTTP/2 and the 100000-byte echo", resp.Proto, len(b))
	}
}

func TestGRPC(t *testing.T) {
	s := start(t, Config{})
	cc, err := grpc.NewClient("passthrough:///"+s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 321})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetPayload().GetBody()); n != 321 {
		t.Errorf("payload %d bytes, want 321", n)
	}
	if _, err := c.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: MaxPayload + 1})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("oversized request: %v, want InvalidArgument", err)
	}
}
