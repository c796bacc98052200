package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// fakeProxy stands in for outrigger running examples/static/bootstrap.yaml,
// with knobs to break one promise at a time. The real proxy is exercised by
// scripts/demo-static.sh.
type fakeProxy struct {
	grpc          *grpc.Server
	instances     int
	omitRequestID bool
	statusBody    string
	next          atomic.Int64
}

func (f *fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") &&
		strings.HasPrefix(path, "/grpc.testing.TestService/"):
		f.grpc.ServeHTTP(w, r)
	case path == "/status":
		_, _ = io.WriteString(w, f.statusBody)
	case strings.HasPrefix(path, "/hello"):
		n := f.next.Add(1)
		headers := map[string]string{"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http"}
		if !f.omitRequestID {
			headers["x-request-id"] = fmt.Sprintf("req-%d", n)
		}
		_ = json.NewEncoder(w).Encode(helloReply{
			Service:  "httpapp",
			Instance: fmt.Sprintf("127.0.0.1:%d", 8000+n%int64(f.instances)),
			Path:     path,
			Proto:    "HTTP/1.1",
			Headers:  headers,
		})
	case path == "/echo" && r.Method == http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

// streamService answers the two TestService methods the demo calls.
type streamService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (streamService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if err := grpc.SetHeader(ctx, metadata.Pairs(echoInitialKey, md.Get(echoInitialKey)[0])); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs(echoTrailingKey, md.Get(echoTrailingKey)[0])); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, in.GetResponseSize())}, ServerId: "fake", Hostname: "fake:1"}, nil
}

func (streamService) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range in.GetResponseParameters() {
		t := time.NewTimer(time.Duration(p.GetIntervalUs()) * time.Microsecond)
		select {
		case <-t.C:
		case <-stream.Context().Done():
			t.Stop()
			return stream.Context().Err()
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

// serveLoopback serves h on a loopback port (HTTP/1.1 and h2c) until the test ends.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func startFakeProxy(t *testing.T, f *fakeProxy) string {
	t.Helper()
	f.grpc = grpc.NewServer()
	testgrpc.RegisterTestServiceServer(f.grpc, streamService{})
	t.Cleanup(f.grpc.Stop)
	return serveLoopback(t, f)
}

// startAdmin answers /ready with 503 for the first notReady probes, then 200.
func startAdmin(t *testing.T, notReady int64) string {
	t.Helper()
	var probes atomic.Int64
	return serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if probes.Add(1) <= notReady {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "LIVE\n")
	}))
}

func TestRun(t *testing.T) {
	healthy := func() *fakeProxy { return &fakeProxy{instances: 2, statusBody: statusBody} }
	tests := []struct {
		name       string
		proxy      func() *fakeProxy
		notReady   int64
		wait       string
		wantErr    error
		wantErrStr string
		wantOut    []string
	}{
		{
			name: "everything as promised", proxy: healthy, notReady: 2,
			wantOut: []string{
				"127.0.0.1:8000 x2, 127.0.0.1:8001 x2",
				"x-request-id=req-1",
				"HTTP/2.0 -> httpapp",
				"echoed header x-grpc-test-echo-initial=[\"hello-header\"]",
				"message 4:  64 bytes",
				"Health/Check -> Unimplemented",
				"GET /no-such-route -> 404",
				"GET /status -> 200 \"outrigger static demo\\n\"",
				"all 8 checks passed",
			},
		},
		{
			name:    "no x-request-id",
			proxy:   func() *fakeProxy { f := healthy(); f.omitRequestID = true; return f },
			wantErr: errChecksFailed,
			wantOut: []string{"FAIL: request 1: the app saw no x-request-id", "2 of 8 checks failed"},
		},
		{
			name:    "one instance only",
			proxy:   func() *fakeProxy { f := healthy(); f.instances = 1; return f },
			wantErr: errChecksFailed,
			wantOut: []string{"FAIL: round robin reached 1 instance(s), want 2", "1 of 8 checks failed"},
		},
		{
			name:    "wrong direct response",
			proxy:   func() *fakeProxy { f := healthy(); f.statusBody = "nope"; return f },
			wantErr: errChecksFailed,
			wantOut: []string{"FAIL: got 200 \"nope\"", "- direct_response: GET /status"},
		},
		{
			name: "admin never ready", proxy: healthy, notReady: 1 << 30, wait: "300ms",
			wantErrStr: "/ready not ready after 300ms: status 503",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startFakeProxy(t, tt.proxy())
			admin := startAdmin(t, tt.notReady)
			wait := tt.wait
			if wait == "" {
				wait = "5s"
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{"-proxy", proxy, "-admin", admin, "-wait", wait}, &out, io.Discard)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			case tt.wantErrStr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrStr)):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErrStr)
			case tt.wantErr == nil && tt.wantErrStr == "" && err != nil:
				t.Errorf("err = %v", err)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults"},
		{name: "no admin wait", args: []string{"-admin", ""}},
		{name: "empty proxy", args: []string{"-proxy", ""}, wantErr: "-proxy must not be empty"},
		{name: "zero requests", args: []string{"-requests", "0"}, wantErr: "-requests must be at least 1"},
		{name: "more instances than requests", args: []string{"-requests", "1", "-instances", "2"}, wantErr: "-instances must be between 0 and -requests"},
		{name: "zero timeout", args: []string{"-timeout", "0s"}, wantErr: "-timeout must be positive"},
		{name: "stray argument", args: []string{"x"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
