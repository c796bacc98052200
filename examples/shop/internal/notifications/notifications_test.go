package notifications

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
)

func newTestService(t *testing.T) *service {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), "n.db"), schema...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return newService(db, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
}

func TestHandleIsIdempotent(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	o := events.Order{OrderID: "o1", UserID: "u1", Item: "tea", AmountCents: 1205}
	for range 2 {
		if err := s.handle(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.list(ctx, maxList)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !strings.Contains(list[0].Message, "tea, 12.05 paid") {
		t.Fatalf("list = %+v, want one notification for o1", list)
	}
	if testutil.ToFloat64(s.sent) != 1 || testutil.ToFloat64(s.duplicates) != 1 {
		t.Errorf("sent %v, duplicates %v; want 1 and 1", testutil.ToFloat64(s.sent), testutil.ToFloat64(s.duplicates))
	}
	_ = s.db.Close()
	if err := s.handle(ctx, events.Order{OrderID: "o2"}); err == nil || !strings.Contains(err.Error(), "order o2") {
		t.Errorf("handle with the database closed = %v, want an error naming the order", err)
	}
}

func TestListHTTP(t *testing.T) {
	s := newTestService(t)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.handle(context.Background(), events.Order{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	s.routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tt := range []struct {
		query     string
		code, len int
	}{{"", 200, 3}, {"?limit=2", 200, 2}, {"?limit=0", 400, 0}, {"?limit=x", 400, 0}, {"?limit=100000", 400, 0}} {
		resp, err := http.Get(srv.URL + "/notifications" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Count int `json:"count"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || body.Count != tt.len {
			t.Errorf("GET %s = %d with %d, want %d with %d", tt.query, resp.StatusCode, body.Count, tt.code, tt.len)
		}
	}
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"empty durable", []string{"-durable", ""}, "-durable"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"no nats", []string{"-db", filepath.Join(t.TempDir(), "n.db"), "-nats-url", "nats://" + shoptest.FreeAddr(t)}, "nats"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Bounded: Run waits for a NATS server that is not up yet.
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			err := Run(ctx, tt.args, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}
