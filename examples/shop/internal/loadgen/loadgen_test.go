package loadgen

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/orders"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/payments"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/users"
)

func TestSummary(t *testing.T) {
	w := newWindow()
	for i := 1; i <= 100; i++ {
		v := "v1"
		if i > 90 {
			v = "v2"
		}
		w.ok(time.Duration(i)*time.Millisecond, v)
	}
	w.fail(errorKind(status.Error(codes.Unavailable, "x")))
	w.retried()
	w.fail(errorKind(errors.New("x")))
	s := w.take(3 * time.Second)
	want := "t=  3s rate=102/s errors=2 (Unavailable=1 error=1) retries=1 p99=99ms payments v1=90% v2=10%"
	if got := s.String(); got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
	if got := w.take(4 * time.Second).String(); got != "t=  4s rate=0/s errors=0 p99=0s" {
		t.Fatalf("empty window = %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgainstTheShop drives real users, orders and payments (no gateway:
// straight to their addresses) for a few seconds.
func TestAgainstTheShop(t *testing.T) {
	r := shoptest.StartRedis(t)
	natsURL := shoptest.StartNATS(t).ClientURL()
	dir := t.TempDir()
	usersAddr, payAddr, payAdmin, ordersAddr, ordersAdmin := shoptest.FreeAddr(t), shoptest.FreeAddr(t), shoptest.FreeAddr(t), shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	quiet := slog.New(slog.DiscardHandler)
	for _, s := range []struct {
		run  func(context.Context, []string, *slog.Logger) error
		args []string
	}{
		{users.Run, []string{"-addr", usersAddr, "-redis", r.Addr, "-db", filepath.Join(dir, "u.db")}},
		// One charge in five fails after it is stored: the lost-response
		// case, which loadgen's retries with the same request id recover.
		{payments.Run, []string{"-addr", payAddr, "-admin-addr", payAdmin, "-db", filepath.Join(dir, "p.db"), "-version", "v1", "-fail-rate", "0.2", "-fail-after-charge"}},
		{orders.Run, []string{"-addr", ordersAddr, "-admin-addr", ordersAdmin, "-db", filepath.Join(dir, "o.db"), "-payments-addr", payAddr, "-users-url", "http://" + usersAddr, "-nats-url", natsURL}},
	} {
		wg.Go(func() {
			if err := s.run(ctx, s.args, quiet); err != nil {
				t.Errorf("service: %v", err)
			}
		})
	}
	for _, a := range []string{usersAddr, payAdmin, ordersAdmin} {
		shoptest.Eventually(t, 10*time.Second, a+" healthy", func() bool {
			resp, err := http.Get("http://" + a + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	var out syncBuffer
	err := run(context.Background(), []string{"-users-url", "http://" + usersAddr, "-orders-addr", ordersAddr, "-rate", "40", "-users", "3", "-duration", "2500ms", "-retries", "10"}, &out, quiet)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	t.Logf("loadgen:\n%s", out.String())
	if len(lines) < 2 {
		t.Fatalf("want a line per second, got %q", lines)
	}
	retried := false
	for _, l := range lines {
		if !strings.Contains(l, "errors=0") || !strings.Contains(l, "payments v1=100%") {
			t.Errorf("line %q: want no errors and every order charged by v1", l)
		}
		retried = retried || strings.Contains(l, "retries=")
	}
	if !retried {
		t.Errorf("no line reports retries, with one charge in five failing")
	}
	// Every paid order charged exactly once, every charge an order's.
	paid := countRows(t, filepath.Join(dir, "o.db"), `SELECT COUNT(*) FROM orders WHERE status = 'paid'`)
	charges := countRows(t, filepath.Join(dir, "p.db"), `SELECT COUNT(*) FROM charges`)
	if paid == 0 || paid != charges {
		t.Fatalf("paid orders %d, charges %d: want equal and non-zero", paid, charges)
	}
}

func countRows(t *testing.T, path, query string) int {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"zero rate", []string{"-rate", "0"}, "-rate"},
		{"too many retries", []string{"-retries", "11"}, "-retries"},
		{"no users", []string{"-users", "0"}, "-users"},
		{"bad timeout", []string{"-timeout", "0s"}, "-timeout"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"users unreachable", []string{"-users-url", "http://" + shoptest.FreeAddr(t), "-duration", "300ms"}, "no user created"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}
