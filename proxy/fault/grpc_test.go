package fault

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcRig is an h2c server whose handler only runs the filter, dialled by
// a real grpc-go client: what the client makes of an abort is what a gRPC
// caller behind the proxy would see.
func grpcRig(t *testing.T, cfg *Config) (*Filter, healthpb.HealthClient) {
	t.Helper()
	f := New(cfg)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("request over %s, want HTTP/2", r.Proto)
		}
		if out := f.Apply(w, r, ""); !out.Aborted {
			// Nothing behind the filter in this test.
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "12")
			w.Header().Set("Grpc-Message", "no backend")
			w.WriteHeader(http.StatusOK)
		}
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(srv.Listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return f, healthpb.NewHealthClient(conn)
}

func TestGRPCAbortSeenByGRPCClient(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      *Config
		md       []string // request metadata pairs
		wantCode codes.Code
		wantMsg  string
	}{
		{"grpc_status", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: int(codes.ResourceExhausted), Percent: Percent(100)}},
			nil, codes.ResourceExhausted, DefaultAbortBody},
		{"http_status mapped", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)}},
			nil, codes.Unavailable, DefaultAbortBody},
		{"http 404 mapped", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 404, Percent: Percent(100), Body: "gone fishing: 100% ✓"}},
			nil, codes.Unimplemented, "gone fishing: 100% ✓"},
		{"header grpc", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)}},
			[]string{"x-envoy-fault-abort-grpc-request", "7"}, codes.PermissionDenied, DefaultAbortBody},
		{"header http", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)}},
			[]string{"x-envoy-fault-abort-request", "401"}, codes.Unauthenticated, DefaultAbortBody},
		{"no fault", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)}},
			nil, codes.Unimplemented, "no backend"},
		{"delay then abort", &Config{
			Delay: &Delay{Fixed: 20 * time.Millisecond, Percent: Percent(100)},
			Abort: &Abort{Kind: AbortGRPC, GRPCStatus: int(codes.Aborted), Percent: Percent(100)},
		}, nil, codes.Aborted, DefaultAbortBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := grpcRig(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if len(tc.md) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			st, ok := status.FromError(err)
			if !ok || st.Code() != tc.wantCode || st.Message() != tc.wantMsg {
				t.Fatalf("Check: %v (code %v, message %q), want %v %q", err, st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
			if tc.wantMsg != "no backend" && f.Stats().AbortsInjected != 1 {
				t.Errorf("stats %+v, want one abort", f.Stats())
			}
		})
	}
}

// The Outcome of a gRPC abort reports the trailers-only reply's HTTP 200
// and its grpc-status, for the access log.
func TestGRPCAbortOutcome(t *testing.T) {
	f := New(&Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 429, Percent: Percent(100)}})
	r := httptest.NewRequest(http.MethodPost, "/grpc.health.v1.Health/Check", nil)
	r.Header.Set("Content-Type", "application/grpc+proto")
	rec := httptest.NewRecorder()
	out := f.Apply(rec, r, "")
	if out != (Outcome{Aborted: true, Status: 200, GRPCStatus: "14", Flag: "FI"}) {
		t.Errorf("outcome %+v", out)
	}
	if rec.Code != 200 || rec.Header().Get("Grpc-Status") != "14" || rec.Header().Get("Content-Type") != "application/grpc" || rec.Body.Len() != 0 {
		t.Errorf("reply %d %v %q, want trailers-only", rec.Code, rec.Header(), rec.Body)
	}
}
