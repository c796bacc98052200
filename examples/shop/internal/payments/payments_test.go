package payments

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// startPayments serves a payments instance over real gRPC on loopback with
// its database at dbPath and returns a client and the service.
func startPayments(t *testing.T, dbPath, version string, k knobs) (shoppb.PaymentsClient, *service) {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), dbPath, schema...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	svc := newService(db, version, k, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shoppb.RegisterPaymentsServer(srv, svc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return shoppb.NewPaymentsClient(cc), svc
}

func charge(key, order string, cents int64) *shoppb.ChargeRequest {
	return &shoppb.ChargeRequest{IdempotencyKey: key, OrderId: order, UserId: "u1", AmountCents: cents}
}

func storedCharges(t *testing.T, s *service) int {
	t.Helper()
	n, err := s.count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSameKeyChargesOnce(t *testing.T) {
	c, svc := startPayments(t, filepath.Join(t.TempDir(), "p.db"), "v1", knobs{})
	ctx := context.Background()
	first, err := c.Charge(ctx, charge("order-1", "1", 1299))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Charge(ctx, charge("order-1", "1", 1299))
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !second.Replayed || first.ChargeId != second.ChargeId || second.Version != "v1" {
		t.Fatalf("first %+v, second %+v: want one charge, replayed the second time", first, second)
	}
	if n := storedCharges(t, svc); n != 1 {
		t.Fatalf("stored charges = %d, want 1", n)
	}
	if got := testutil.ToFloat64(svc.charges.WithLabelValues(resultReplayed)); got != 1 {
		t.Errorf("replayed counter = %v, want 1", got)
	}
}

// TestSharedDatabaseAcrossVersions: v1 and v2 share one SQLite file, and
// concurrent calls with one key through both charge once.
func TestSharedDatabaseAcrossVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	c1, svc := startPayments(t, path, "v1", knobs{})
	c2, _ := startPayments(t, path, "v2", knobs{})
	var wg sync.WaitGroup
	ids := make(chan string, 20)
	for i := range 20 {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		wg.Go(func() {
			r, err := c.Charge(context.Background(), charge("order-7", "7", 500))
			if err != nil {
				t.Error(err)
				return
			}
			ids <- r.ChargeId
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 || storedCharges(t, svc) != 1 {
		t.Fatalf("charge ids %v, stored %d: want exactly one charge", seen, storedCharges(t, svc))
	}
}

func TestInjectedFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	before, svc := startPayments(t, path, "v1", knobs{failRate: 1})
	after, _ := startPayments(t, path, "v2", knobs{failRate: 1, failAfterCharge: true})
	healthy, _ := startPayments(t, path, "v3", knobs{})
	ctx := context.Background()

	if _, err := before.Charge(ctx, charge("k1", "1", 100)); status.Code(err) != codes.Unavailable {
		t.Fatalf("fail before: err = %v, want UNAVAILABLE", err)
	}
	if n := storedCharges(t, svc); n != 0 {
		t.Fatalf("after a failure before charging, stored = %d, want 0", n)
	}
	if _, err := after.Charge(ctx, charge("k2", "2", 100)); status.Code(err) != codes.Unavailable {
		t.Fatalf("fail after: err = %v, want UNAVAILABLE", err)
	}
	// The retry, landing elsewhere, finds the charge the lost response was
	// about and does not charge again.
	r, err := healthy.Charge(ctx, charge("k2", "2", 100))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Replayed || r.Version != "v2" || r.ServedBy != "v3" {
		t.Fatalf("retry = %+v, want replayed charge taken by v2, served by v3", r)
	}
	if n := storedCharges(t, svc); n != 1 {
		t.Fatalf("stored = %d, want 1", n)
	}
	if got := testutil.ToFloat64(svc.charges.WithLabelValues(resultInjected)); got != 1 {
		t.Errorf("v1 injected failures = %v, want 1", got)
	}
}

func TestLatencyKnob(t *testing.T) {
	c, _ := startPayments(t, filepath.Join(t.TempDir(), "p.db"), "v1", knobs{latency: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Charge(ctx, charge("k", "1", 100)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestChargeRejects(t *testing.T) {
	c, svc := startPayments(t, filepath.Join(t.TempDir(), "p.db"), "v1", knobs{})
	ctx := context.Background()
	if _, err := c.Charge(ctx, charge("k", "1", 100)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		req  *shoppb.ChargeRequest
		want codes.Code
	}{
		{"no key", charge("", "1", 100), codes.InvalidArgument},
		{"no order", charge("k9", "", 100), codes.InvalidArgument},
		{"zero amount", charge("k9", "1", 0), codes.InvalidArgument},
		{"key reused for another amount", charge("k", "1", 200), codes.FailedPrecondition},
		{"key reused for another order", charge("k", "2", 100), codes.FailedPrecondition},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Charge(ctx, tt.req); status.Code(err) != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := storedCharges(t, svc); n != 1 {
		t.Fatalf("stored = %d, want 1", n)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"fail rate above 1", []string{"-fail-rate", "1.5"}, nil, "fail rate"},
		{"negative latency", []string{"-latency", "-1s"}, nil, "latency"},
		{"empty version", []string{"-version", ""}, nil, "-version"},
		{"extra args", []string{"x"}, nil, "unexpected arguments"},
		{"bad env rate", nil, map[string]string{"PAYMENTS_FAIL_RATE": "lots"}, "PAYMENTS_FAIL_RATE"},
		{"bad env latency", nil, map[string]string{"PAYMENTS_LATENCY": "soon"}, "PAYMENTS_LATENCY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := parseFlags(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
	t.Setenv("PAYMENTS_VERSION", "v2")
	t.Setenv("PAYMENTS_LATENCY", "20ms")
	c, err := parseFlags([]string{"-fail-rate", "0.25"})
	if err != nil {
		t.Fatal(err)
	}
	if c.version != "v2" || c.knobs.latency != 20*time.Millisecond || c.knobs.failRate != 0.25 {
		t.Fatalf("config = %+v", c)
	}
}

func TestRun(t *testing.T) {
	addr, admin := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, []string{"-addr", addr, "-admin-addr", admin, "-db", filepath.Join(t.TempDir(), "p.db"), "-version", "v2"}, slog.New(slog.DiscardHandler))
	}()
	shoptest.Eventually(t, 10*time.Second, "payments /healthz", func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	r, err := shoppb.NewPaymentsClient(cc).Charge(context.Background(), charge("k", "1", 100))
	if err != nil || r.ServedBy != "v2" {
		t.Fatalf("charge = %+v, %v", r, err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if err := Run(context.Background(), []string{"-db", filepath.Join(t.TempDir(), "p.db"), "-addr", "256.0.0.1:1"}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("run with a bad address = %v", err)
	}
}
