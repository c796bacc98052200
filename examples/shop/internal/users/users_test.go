package users

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
)

type fixture struct {
	redis *shoptest.Redis
	svc   *service
	url   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	r := shoptest.StartRedis(t)
	db, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), "users.db"), schema...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	cache := newRedis(r.Addr)
	t.Cleanup(func() { _ = cache.Close() })
	reg := prometheus.NewRegistry()
	svc := newService(db, cache, reg, slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	svc.routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{redis: r, svc: svc, url: srv.URL}
}

func (f *fixture) create(t *testing.T, body string) (int, User) {
	t.Helper()
	resp, err := http.Post(f.url+"/users", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u User
	_ = json.NewDecoder(resp.Body).Decode(&u)
	return resp.StatusCode, u
}

func (f *fixture) get(t *testing.T, id string) (int, string, User) {
	t.Helper()
	resp, err := http.Get(f.url + "/users/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u User
	_ = json.NewDecoder(resp.Body).Decode(&u)
	return resp.StatusCode, resp.Header.Get("X-Cache"), u
}

func (f *fixture) lookups(result string) float64 {
	return testutil.ToFloat64(f.svc.lookups.WithLabelValues(result))
}

func TestCacheMissThenHit(t *testing.T) {
	f := newFixture(t)
	code, u := f.create(t, `{"name":"Ada","email":"ada@example.com"}`)
	if code != http.StatusCreated || u.ID == "" {
		t.Fatalf("create = %d %+v", code, u)
	}
	code, cache, got := f.get(t, u.ID)
	if code != http.StatusOK || cache != cacheMiss || got != u {
		t.Fatalf("first get = %d %s %+v, want 200 miss %+v", code, cache, got, u)
	}
	for range 3 {
		code, cache, got = f.get(t, u.ID)
		if code != http.StatusOK || cache != cacheHit || got != u {
			t.Fatalf("cached get = %d %s %+v, want 200 hit %+v", code, cache, got, u)
		}
	}
	if f.lookups(cacheMiss) != 1 || f.lookups(cacheHit) != 3 {
		t.Errorf("lookups miss=%v hit=%v, want 1 and 3", f.lookups(cacheMiss), f.lookups(cacheHit))
	}
	if r := f.svc.hitRatio(); r != 0.75 {
		t.Errorf("hit ratio = %v, want 0.75", r)
	}
}

func TestRedisDownFallsBackToSQLite(t *testing.T) {
	f := newFixture(t)
	_, u := f.create(t, `{"name":"Grace","email":"grace@example.com"}`)
	f.redis.Stop()
	for range 2 {
		code, cache, got := f.get(t, u.ID)
		if code != http.StatusOK || cache != cacheError || got != u {
			t.Fatalf("get with Redis down = %d %s %+v, want 200 error %+v", code, cache, got, u)
		}
	}
	if f.lookups(cacheError) != 2 {
		t.Errorf("error lookups = %v, want 2", f.lookups(cacheError))
	}
	if n := testutil.ToFloat64(f.svc.cacheErrs.WithLabelValues("get")); n != 2 {
		t.Errorf("users_cache_errors_total{op=get} = %v, want 2", n)
	}
	// Writes do not touch Redis, so they go on working.
	if code, _ := f.create(t, `{"name":"Alan","email":"alan@example.com"}`); code != http.StatusCreated {
		t.Errorf("create with Redis down = %d, want 201", code)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name, body string
	}{
		{"not json", `{`},
		{"no name", `{"email":"x@example.com"}`},
		{"bad email", `{"name":"X","email":"nope"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _ := f.create(t, tt.body); code != http.StatusBadRequest {
				t.Errorf("create %s = %d, want 400", tt.body, code)
			}
		})
	}
	if code, cache, _ := f.get(t, "nobody"); code != http.StatusNotFound || cache != cacheMiss {
		t.Errorf("get unknown = %d %s, want 404 miss", code, cache)
	}
}

// TestRun starts the real main on a free port and stops it as SIGTERM
// would, checking /healthz and /metrics on the way.
func TestRun(t *testing.T) {
	r := shoptest.StartRedis(t)
	addr := shoptest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		errc <- Run(ctx, []string{"-addr", addr, "-redis", r.Addr, "-db", filepath.Join(t.TempDir(), "u.db")}, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	shoptest.Eventually(t, 10*time.Second, "users /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "users_cache_hit_ratio") {
		t.Errorf("/metrics lacks users_cache_hit_ratio")
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
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"bad db", []string{"-db", "/nonexistent-dir/x/users.db", "-addr", "127.0.0.1:0"}, "sqlite"},
		{"bad addr", []string{"-db", filepath.Join(t.TempDir(), "u.db"), "-addr", "256.0.0.1:1"}, "listen on"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), tt.args, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}
