package jwtauthn

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// jwksServer serves a key set that tests can swap, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	hits   atomic.Int64
	host   atomic.Value // Host header of the last fetch
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.host.Store(r.Host)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.WriteHeader(s.status)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// directUpstream is a one-host forward.Upstream over net/http (the
// integration tests in proxy/server use the proxy's real clusters).
type directUpstream struct{ addr string }

func (u directUpstream) Pick(*lb.Request) (*lb.Host, error) { return &lb.Host{Address: u.addr}, nil }
func (u directUpstream) RoundTrip(req *http.Request, h *lb.Host) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host = "http", h.Address
	return http.DefaultTransport.RoundTrip(req)
}
func (directUpstream) AdmitRetry() bool  { return true }
func (directUpstream) ReleaseRetry(bool) {}

type testClusters map[string]forward.Upstream

func (c testClusters) Upstream(name string) (forward.Upstream, bool) {
	u, ok := c[name]
	return u, ok
}

// remoteFilter is a filter whose provider fetches from srv through
// cluster "jwks", on a clock the test moves.
func remoteFilter(t *testing.T, srv *jwksServer, async bool, now *atomic.Int64) *Filter {
	p := &Provider{Issuer: "https://issuer.example", Audiences: []string{"api"},
		Remote: &RemoteJWKS{URI: "http://keys.example/jwks.json", Cluster: "jwks", Timeout: 2 * time.Second, CacheDuration: time.Minute, AsyncFetch: async}}
	f, err := New("jwt", oneRule(p), Options{Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	f.UseClusters(testClusters{"jwks": directUpstream{strings.TrimPrefix(srv.URL, "http://")}})
	return f
}

func TestRemoteJWKSCacheAndRotation(t *testing.T) {
	ks := testKeys(t)
	srv := newJWKSServer(t, jwksOf(t, ks["rs"]))
	var now atomic.Int64
	now.Store(time.Now().Unix())
	f := remoteFilter(t, srv, false, &now)
	tok := sign(t, ks["rs"], claims())
	for range 3 {
		if res := do(f, "/", tok, nil); !res.passed() {
			t.Fatalf("refused: %q", res.w.Body.String())
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for three requests within cache_duration, want 1", n)
	}
	if h, _ := srv.host.Load().(string); h != "keys.example" {
		t.Fatalf("Host of the fetch %q, want the URI's", h)
	}
	// Rotate: the new key is unknown until the cache expires.
	srv.set(200, jwksOf(t, ks["es256"]))
	tok2 := sign(t, ks["es256"], claims())
	wantDenied(t, do(f, "/", tok2, nil), 401, "Jwks doesn't have key to match kid or alg from Jwt")
	now.Add(61)
	if res := do(f, "/", tok2, nil); !res.passed() {
		t.Fatalf("rotated key refused after expiry: %q", res.w.Body.String())
	}
	wantDenied(t, do(f, "/", tok, nil), 401, "Jwks doesn't have key to match kid or alg from Jwt")
	st := f.Stats()
	if st["jwt_authn.jwks_fetch_success"] != 2 || st["jwt_authn.jwks_fetch_failed"] != 0 {
		t.Fatalf("stats %v", st)
	}
	// A failed refresh fails the request (no async_fetch).
	srv.set(500, nil)
	now.Add(61)
	wantDenied(t, do(f, "/", tok2, nil), 401, "Jwks remote fetch is failed")
	srv.set(200, []byte("not json"))
	wantDenied(t, do(f, "/", tok2, nil), 401, "Jwks remote fetch is failed")
	if f.Stats()["jwt_authn.jwks_fetch_failed"] != 2 {
		t.Fatalf("stats %v", f.Stats())
	}
}

func TestRemoteJWKSAsync(t *testing.T) {
	ks := testKeys(t)
	srv := newJWKSServer(t, jwksOf(t, ks["rs"]))
	var now atomic.Int64
	now.Store(time.Now().Unix())
	f := remoteFilter(t, srv, true, &now)
	// UseClusters started the first fetch; wait for it with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats()["jwt_authn.jwks_fetch_success"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fetch at start with async_fetch")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tok := sign(t, ks["rs"], claims())
	if !do(f, "/", tok, nil).passed() {
		t.Fatal("refused after the async fetch")
	}
	// Stale keys keep serving while the refresh fails in the background.
	srv.set(500, nil)
	now.Add(61)
	if res := do(f, "/", tok, nil); !res.passed() {
		t.Fatalf("stale keys not used: %q", res.w.Body.String())
	}
	for f.Stats()["jwt_authn.jwks_fetch_failed"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRemoteJWKSWithoutClusters(t *testing.T) {
	ks := testKeys(t)
	tok := sign(t, ks["rs"], claims())
	p := &Provider{Issuer: "https://issuer.example", Audiences: []string{"api"},
		Remote: &RemoteJWKS{URI: "http://keys.example/jwks.json", Cluster: "jwks"}}
	f := newFilter(t, oneRule(p))
	f.UseClusters(nil) // ignored
	wantDenied(t, do(f, "/", tok, nil), 401, "Jwks remote fetch is failed")
	f.UseClusters(testClusters{})
	wantDenied(t, do(f, "/", tok, nil), 401, "Jwks remote fetch is failed")
	if f.Stats()["jwt_authn.jwks_fetch_failed"] != 2 {
		t.Fatalf("stats %v", f.Stats())
	}
	// A request whose context ends while it waits for the fetch fails.
	f.UseClusters(testClusters{"jwks": directUpstream{"127.0.0.1:1"}})
	ctx, cancel := contextCanceled()
	defer cancel()
	if _, st := f.providers["p"].keys(ctx); st != JwksFetchFail {
		t.Fatalf("canceled wait: %v", st)
	}
}

func contextCanceled() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, cancel
}
