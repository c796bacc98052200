package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "static ip", cfg: Config{Name: "a", Endpoints: []Endpoint{{Address: "127.0.0.1:80"}, {Address: "[::1]:80"}}}},
		{name: "strict dns name", cfg: Config{Name: "a", Discovery: StrictDNS, Endpoints: []Endpoint{{Address: "localhost:80"}}}},
		{name: "no name", cfg: Config{}, wantErr: "name is empty"},
		{name: "static name", cfg: Config{Name: "a", Endpoints: []Endpoint{{Address: "localhost:80"}}}, wantErr: "STATIC clusters need an IP address"},
		{name: "no port", cfg: Config{Name: "a", Endpoints: []Endpoint{{Address: "127.0.0.1"}}}, wantErr: "missing port"},
		{name: "bad port", cfg: Config{Name: "a", Endpoints: []Endpoint{{Address: "127.0.0.1:70000"}}}, wantErr: "port must be"},
		{name: "logical dns two", cfg: Config{Name: "a", Discovery: LogicalDNS, Endpoints: []Endpoint{{Address: "a:1"}, {Address: "b:1"}}}, wantErr: "exactly one endpoint"},
		{name: "eds empty", cfg: Config{Name: "a", Discovery: EDS}},
		{name: "eds ip", cfg: Config{Name: "a", Discovery: EDS, Endpoints: []Endpoint{{Address: "127.0.0.1:80"}}}},
		{name: "eds name", cfg: Config{Name: "a", Discovery: EDS, Endpoints: []Endpoint{{Address: "localhost:80"}}}, wantErr: "EDS clusters need an IP address"},
		{name: "protocol", cfg: Config{Name: "a", Protocol: 9}, wantErr: "unknown protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUpdateRejectsWholeBatch(t *testing.T) {
	m := newManager(t)
	err := m.Update([]Config{
		{Name: "good", Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}},
		{Name: "bad", Endpoints: []Endpoint{{Address: "example.com:1"}}},
	})
	if err == nil || !strings.Contains(err.Error(), `cluster "bad"`) {
		t.Fatalf("Update = %v, want an error naming cluster bad", err)
	}
	if m.Get("good") != nil {
		t.Fatal("a rejected batch was partly applied")
	}
	if err := m.Update([]Config{{Name: "x"}, {Name: "x"}}); err == nil {
		t.Fatal("duplicate names accepted")
	}
}

func TestWeightedRoundRobinBackends(t *testing.T) {
	m := newManager(t)
	var eps []Endpoint
	for i, w := range []uint32{1, 2, 3} {
		eps = append(eps, Endpoint{Address: backend(t, fmt.Sprintf("b%d", i)), Weight: w})
	}
	update(t, m, Config{Name: "web", Endpoints: eps})
	c := m.Get("web")
	counts := map[string]int{}
	const n = 600
	for i := 0; i < n; i++ {
		_, body, err := do(t, c, t.Context(), 1)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		counts[strings.Fields(body)[0]]++
	}
	for i, want := range []int{100, 200, 300} {
		if got := counts[fmt.Sprintf("b%d", i)]; got != want {
			t.Fatalf("backend counts %v, want 100/200/300", counts)
		}
	}
	for i, h := range c.Hosts() {
		if got, want := h.Stats.RqTotal.Load(), uint64((i+1)*100); got != want {
			t.Fatalf("host %s rq_total %d, want %d", h.Address, got, want)
		}
		if h.Stats.RqActive.Load() != 0 || h.Stats.RqSuccess.Load() != h.Stats.RqTotal.Load() {
			t.Fatalf("host %s rq_active %d rq_success %d", h.Address, h.Stats.RqActive.Load(), h.Stats.RqSuccess.Load())
		}
	}
}

func TestKeepAliveReuse(t *testing.T) {
	m := newManager(t)
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: backend(t, "b")}}})
	c := m.Get("web")
	for i := 0; i < 50; i++ {
		if _, _, err := do(t, c, t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	s := c.Stats()
	if s.CxTotal.Load() != 1 || s.RqTotal.Load() != 50 || s.RqCompleted.Load() != 50 || s.RqActive.Load() != 0 {
		t.Fatalf("stats %v, want 1 connection for 50 completed requests", s.Snapshot())
	}
	if h := c.Hosts()[0]; h.Stats.CxActive.Load() != 1 || h.Stats.CxTotal.Load() != 1 {
		t.Fatalf("host cx_active %d cx_total %d, want 1/1", h.Stats.CxActive.Load(), h.Stats.CxTotal.Load())
	}
}

func TestProtocols(t *testing.T) {
	plain := backend(t, "plain")
	sni := make(chan string, 16)
	secure, tlsCfg := tlsBackend(t, "tls", sni)
	sniCfg := tlsCfg.Clone()
	sniCfg.ServerName = "example.com"
	tests := []struct {
		name       string
		cfg        Config
		protoMajor int
		want       string
		wantSNI    string
	}{
		{name: "http1", cfg: Config{Endpoints: []Endpoint{{Address: plain}}}, want: "plain HTTP/1.1"},
		{name: "h2c prior knowledge", cfg: Config{Protocol: HTTP2, Endpoints: []Endpoint{{Address: plain}}}, want: "plain HTTP/2.0"},
		{name: "downstream h2", cfg: Config{Protocol: UseDownstreamProto, Endpoints: []Endpoint{{Address: plain}}}, protoMajor: 2, want: "plain HTTP/2.0"},
		{name: "downstream h1", cfg: Config{Protocol: UseDownstreamProto, Endpoints: []Endpoint{{Address: plain}}}, protoMajor: 1, want: "plain HTTP/1.1"},
		{name: "h2 over TLS with SNI", cfg: Config{Protocol: HTTP2, TLS: sniCfg, Endpoints: []Endpoint{{Address: secure}}}, want: "tls HTTP/2.0", wantSNI: "example.com"},
		{name: "http1 over TLS", cfg: Config{TLS: tlsCfg, Endpoints: []Endpoint{{Address: secure}}}, want: "tls HTTP/1.1"},
		{name: "downstream h2 over TLS", cfg: Config{Protocol: UseDownstreamProto, TLS: tlsCfg, Endpoints: []Endpoint{{Address: secure}}}, protoMajor: 2, want: "tls HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for len(sni) > 0 {
				<-sni
			}
			m := newManager(t)
			tt.cfg.Name = "c"
			update(t, m, tt.cfg)
			resp, body, err := do(t, m.Get("c"), t.Context(), tt.protoMajor)
			if err != nil {
				t.Fatal(err)
			}
			if body != tt.want {
				t.Fatalf("body %q, want %q", body, tt.want)
			}
			if resp.Trailer.Get("X-Trailer") == "" {
				t.Fatalf("trailers %v lost", resp.Trailer)
			}
			if tt.wantSNI != "" {
				if got := <-sni; got != tt.wantSNI {
					t.Fatalf("SNI %q, want %q", got, tt.wantSNI)
				}
			}
		})
	}
}

func TestUntrustedUpstreamIsConnectFailure(t *testing.T) {
	secure, _ := tlsBackend(t, "tls", nil)
	m := newManager(t)
	update(t, m, Config{Name: "c", Protocol: HTTP2, TLS: &tls.Config{}, // system roots lack the test CA
		Endpoints: []Endpoint{{Address: secure}}})
	c := m.Get("c")
	_, _, err := do(t, c, t.Context(), 1)
	var te *transport.Error
	if !errors.As(err, &te) || te.Kind != transport.KindConnect || !te.TLS {
		t.Fatalf("err = %v, want a TLS connect failure", err)
	}
	s := c.Stats()
	if s.CxConnectFail.Load() != 1 || s.RqConnectFail.Load() != 1 || s.RqActive.Load() != 0 ||
		s.CxTotal.Load() != 0 || s.CxActive.Load() != 0 {
		t.Fatalf("stats %v", s.Snapshot())
	}
	if h := c.Hosts()[0]; h.Stats.CxConnectFail.Load() != 1 || h.Stats.RqError.Load() != 1 {
		t.Fatalf("host cx_connect_fail %d rq_error %d, want 1/1", h.Stats.CxConnectFail.Load(), h.Stats.RqError.Load())
	}
}

func TestFailureAccounting(t *testing.T) {
	// A server that answers headers then dies mid-body, and one that hangs.
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cut":
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	m := newManager(t)
	update(t, m, Config{Name: "c", Endpoints: []Endpoint{{Address: ln.Addr().String()}}})
	c := m.Get("c")
	send := func(ctx context.Context, path string) error {
		h, _ := c.Pick(nil)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x"+path, nil)
		resp, err := c.RoundTrip(req, h)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}

	err = send(t.Context(), "/cut")
	var te *transport.Error
	if !errors.As(err, &te) || te.Kind != transport.KindReset || !te.AfterHeaders {
		t.Fatalf("cut body: err = %v, want reset after headers", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := send(ctx, "/hang"); !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("hang: err = %v, want timeout", err)
	}
	s := c.Stats()
	if s.RqReset.Load() != 1 || s.RqTimeout.Load() != 1 || s.RqTotal.Load() != 2 || s.RqActive.Load() != 0 {
		t.Fatalf("stats %v", s.Snapshot())
	}
	host := c.Hosts()[0]
	if host.Stats.RqError.Load() != 2 || host.Stats.RqTimeout.Load() != 1 || host.Stats.RqActive.Load() != 0 {
		t.Fatalf("host rq_error %d rq_timeout %d rq_active %d", host.Stats.RqError.Load(), host.Stats.RqTimeout.Load(), host.Stats.RqActive.Load())
	}
}

func TestNoHealthyUpstream(t *testing.T) {
	m := newManager(t)
	noPanic := 0.0
	update(t, m, Config{Name: "empty"},
		Config{Name: "down", Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}, LB: lb.Config{PanicThreshold: &noPanic}},
		Config{Name: "panic", Endpoints: []Endpoint{{Address: "127.0.0.1:2"}}})
	if _, err := m.Get("empty").Pick(nil); !errors.Is(err, ErrNoHealthyUpstream) {
		t.Fatalf("Pick on empty cluster: %v", err)
	}
	c := m.Get("down")
	c.Hosts()[0].SetFlag(lb.FailedActiveHC, true)
	if _, err := c.Pick(nil); !errors.Is(err, ErrNoHealthyUpstream) {
		t.Fatalf("Pick with every host unhealthy and panic mode off: %v", err)
	}
	// Envoy's default panic threshold (50 %): with every host unhealthy the
	// balancer spreads over all of them rather than failing.
	p := m.Get("panic")
	p.Hosts()[0].SetFlag(lb.FailedActiveHC, true)
	if h, err := p.Pick(nil); err != nil || h != p.Hosts()[0] {
		t.Fatalf("Pick in panic mode = %v, %v; want the unhealthy host", h, err)
	}
}

func TestSnapshotText(t *testing.T) {
	m := newManager(t)
	addr := backend(t, "b")
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: addr, Weight: 3}}})
	c := m.Get("web")
	for i := 0; i < 4; i++ {
		if _, _, err := do(t, c, t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: addr, Weight: 3}}},
		Config{Name: "a-first", Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}})
	var b strings.Builder
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "a-first::observability_name::a-first\n") {
		t.Fatalf("/clusters text not sorted by cluster name:\n%s", b.String())
	}
	for _, want := range []string{
		"web::observability_name::web\n",
		"web::" + addr + "::rq_total::4\n",
		"web::" + addr + "::rq_success::4\n",
		"web::" + addr + "::cx_total::1\n",
		"web::" + addr + "::weight::3\n",
		"web::" + addr + "::health_flags::healthy\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("/clusters text lacks %q:\n%s", want, b.String())
		}
	}
}

func BenchmarkPick(b *testing.B) {
	m := NewManager(hclog.NewNullLogger())
	defer m.Close()
	var eps []Endpoint
	for i := 0; i < 3; i++ {
		eps = append(eps, Endpoint{Address: fmt.Sprintf("127.0.0.1:%d", 8000+i), Weight: uint32(i + 1)})
	}
	if err := m.Update([]Config{{Name: "c", Endpoints: eps}}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := m.Get("c")
			if _, err := c.Pick(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRoundTrip measures what the cluster adds to a keep-alive
// HTTP/1.1 exchange: compare with BenchmarkRoundTripDirect.
func BenchmarkRoundTrip(b *testing.B) {
	addr := benchBackend(b)
	m := NewManager(hclog.NewNullLogger())
	defer m.Close()
	if err := m.Update([]Config{{Name: "c", Endpoints: []Endpoint{{Address: addr}}}}); err != nil {
		b.Fatal(err)
	}
	c := m.Get("c")
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		h, err := c.Pick(nil)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := c.RoundTrip(req, h)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}

func BenchmarkRoundTripDirect(b *testing.B) {
	addr := benchBackend(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}

func benchBackend(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
