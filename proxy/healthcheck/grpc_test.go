package healthcheck

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// grpcBackend is a real grpc-go server with the standard health service.
type grpcBackend struct {
	addr   string
	health *health.Server
	srv    *grpc.Server

	mu sync.Mutex
	md metadata.MD // of the last call
}

func newGRPCBackend(t *testing.T, cert *tls.Certificate) *grpcBackend {
	t.Helper()
	var tc *tls.Config
	if cert != nil {
		tc = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	return newGRPCBackendTLS(t, tc)
}

func newGRPCBackendTLS(t *testing.T, tc *tls.Config) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{addr: ln.Addr().String(), health: health.NewServer()}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		b.mu.Lock()
		b.md = md
		b.mu.Unlock()
		return h(ctx, req)
	})}
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	b.srv = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(b.srv, b.health)
	b.health.SetServingStatus("payments", healthpb.HealthCheckResponse_SERVING)
	go b.srv.Serve(ln)
	t.Cleanup(b.srv.Stop)
	return b
}

func (b *grpcBackend) lastMD() metadata.MD {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.md
}

func grpcCheck(g GRPCCheck) func(*Config) { return func(c *Config) { c.GRPC = &g } }

func TestGRPCServingStatus(t *testing.T) {
	b := newGRPCBackend(t, nil)
	h := lb.NewHost(b.addr, 1)
	cfg := fast(grpcCheck(GRPCCheck{ServiceName: "payments", InitialMetadata: []Header{{"x-hc", "1"}}}))
	cfg.UnhealthyThreshold = 3
	cfg.HealthyThreshold = 2
	c, rec := start(t, []Config{cfg}, Options{ClusterName: "payments-cluster"}, h)

	rec.waitFor(t, h, "healthy", lastHealthy)
	md := b.lastMD()
	if got := md.Get(":authority"); len(got) != 1 || got[0] != "payments-cluster" {
		t.Errorf(":authority = %q, want the cluster name", got)
	}
	if got := md.Get("user-agent"); len(got) != 1 || !strings.HasPrefix(got[0], "Envoy/HC") {
		t.Errorf("user-agent = %q, want Envoy/HC first", got)
	}
	if got := md.Get("x-hc"); len(got) != 1 || got[0] != "1" {
		t.Errorf("initial metadata x-hc = %q", got)
	}

	// NOT_SERVING is an ACTIVE failure: unhealthy at once, threshold or not.
	n := len(rec.events(h))
	b.health.SetServingStatus("payments", healthpb.HealthCheckResponse_NOT_SERVING)
	evs := rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return !lastHealthy(evs) })
	if e := evs[len(evs)-1]; e.res.outcome != failed || e.res.reason != "gRPC health NOT_SERVING" || e.st.ConsecutiveFailures != 1 {
		t.Fatalf("went unhealthy on %s (%s) after %d failures: %s", outcomeName(e.res.outcome), e.res.reason, e.st.ConsecutiveFailures, describe(evs[n:]))
	}

	b.health.SetServingStatus("payments", healthpb.HealthCheckResponse_SERVING)
	evs = rec.waitFor(t, h, "healthy again", lastHealthy)
	if e := evs[len(evs)-1]; e.st.ConsecutiveSuccesses != 2 {
		t.Errorf("healthy after %d successes, want healthy_threshold 2", e.st.ConsecutiveSuccesses)
	}
	if !c.Host(h).Healthy {
		t.Error("HostStatus not healthy")
	}
}

func TestGRPCUnknownService(t *testing.T) {
	b := newGRPCBackend(t, nil)
	h := lb.NewHost(b.addr, 1)
	_, rec := start(t, []Config{fast(grpcCheck(GRPCCheck{ServiceName: "nope", Authority: "explicit"}))}, Options{ClusterName: "c"}, h)
	e := rec.waitN(t, h, 1)[0]
	if e.res.outcome != failed || !strings.Contains(e.res.reason, "NotFound") || e.healthy {
		t.Fatalf("unknown service: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
	if got := b.lastMD().Get(":authority"); len(got) != 1 || got[0] != "explicit" {
		t.Errorf(":authority = %q, want the configured authority", got)
	}
}

// A server that goes away is a network failure: it counts towards the
// threshold, and a new server on the same address is found again.
func TestGRPCServerDown(t *testing.T) {
	b := newGRPCBackend(t, nil)
	h := lb.NewHost(b.addr, 1)
	cfg := fast(grpcCheck(GRPCCheck{}))
	cfg.UnhealthyThreshold = 2
	cfg.HealthyThreshold = 1
	_, rec := start(t, []Config{cfg}, Options{}, h)
	rec.waitFor(t, h, "healthy", lastHealthy)

	b.srv.Stop()
	evs := rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return !lastHealthy(evs) })
	var fails []event
	for _, e := range evs {
		if e.res.outcome != passed {
			fails = append(fails, e)
		}
	}
	if len(fails) != 2 || fails[0].res.outcome != network || !fails[0].healthy || fails[1].healthy {
		t.Fatalf("want two network failures, the second making the host unhealthy: %s", describe(fails))
	}

	// Serve again on the same address.
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", b.addr, err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	rec.waitFor(t, h, "healthy again", lastHealthy)
}

func TestGRPCOverTLS(t *testing.T) {
	cert, clientTLS := testCert(t)
	var mu sync.Mutex
	var snis []string
	b := newGRPCBackendTLS(t, &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, hello.ServerName)
			mu.Unlock()
			return nil, nil
		},
	})
	lastSNI := func() string {
		mu.Lock()
		defer mu.Unlock()
		return snis[len(snis)-1]
	}
	// Without sni: none is sent (the host is an IP), not the authority.
	h := lb.NewHost(b.addr, 1)
	first, rec := start(t, []Config{fast(grpcCheck(GRPCCheck{}))}, Options{TLS: clientTLS, ClusterName: "not-the-sni"}, h)
	if e := rec.waitN(t, h, 1)[0]; e.res.outcome != passed {
		t.Fatalf("gRPC over TLS: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
	if s := lastSNI(); s != "" {
		t.Errorf("SNI %q sent without one configured", s)
	}
	// Both checkers hit b: stop the first so what b sees next is the
	// second's (a check already in flight may still land, hence the polls).
	first.Close()
	// With sni (httptest's certificate covers example.com).
	withSNI := clientTLS.Clone()
	withSNI.ServerName = "example.com"
	hs := lb.NewHost(b.addr, 1)
	_, rec = start(t, []Config{fast(grpcCheck(GRPCCheck{}))}, Options{TLS: withSNI, ClusterName: "authority"}, hs)
	if e := rec.waitN(t, hs, 1)[0]; e.res.outcome != passed {
		t.Fatalf("gRPC over TLS with SNI: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
	deadline := time.Now().Add(5 * time.Second)
	for lastSNI() != "example.com" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := lastSNI(); s != "example.com" {
		t.Errorf("SNI = %q, want example.com", s)
	}
	authority := func() []string { return b.lastMD().Get(":authority") }
	for got := authority(); (len(got) != 1 || got[0] != "authority") && time.Now().Before(deadline); got = authority() {
		time.Sleep(10 * time.Millisecond)
	}
	if got := authority(); len(got) != 1 || got[0] != "authority" {
		t.Errorf(":authority = %q, want the cluster name, not the SNI", got)
	}
	// grpc-go may clone credentials; the clone keeps the SNI rule.
	if cl, ok := newSNICreds(withSNI).Clone().(*sniCreds); !ok || cl.serverName != "example.com" || cl.Info().ServerName != "" {
		t.Errorf("Clone = %#v", cl)
	}
	// Plaintext to a TLS server fails as a network failure.
	h2 := lb.NewHost(b.addr, 1)
	_, rec = start(t, []Config{fast(grpcCheck(GRPCCheck{}))}, Options{}, h2)
	if e := rec.waitN(t, h2, 1)[0]; e.res.outcome != network {
		t.Fatalf("plaintext to TLS: %s (%s), want network", outcomeName(e.res.outcome), e.res.reason)
	}
}

// hangingHealth never answers until the call is canceled.
type hangingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (hangingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestGRPCTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hangingHealth{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	h := lb.NewHost(ln.Addr().String(), 1)
	cfg := fast(grpcCheck(GRPCCheck{}))
	cfg.Timeout = 100 * time.Millisecond
	_, rec := start(t, []Config{cfg}, Options{}, h)
	evs := rec.waitN(t, h, 2)
	for _, e := range evs[:2] {
		if e.res.outcome != timedOut {
			t.Fatalf("hanging gRPC health: %s", describe(evs))
		}
	}
}

// A ClientConn that cannot be made is reported, not fatal.
func TestGRPCClientError(t *testing.T) {
	cfg := fast(grpcCheck(GRPCCheck{})).withDefaults()
	p := newGRPCProber(&cfg, "127.0.0.1:1", &Options{Dial: (&net.Dialer{}).DialContext})
	p.target = "passthrough:///%zz"
	defer p.close()
	if r := p.probe(context.Background()); r.outcome != network || !strings.Contains(r.reason, "gRPC client") {
		t.Fatalf("probe = %+v", r)
	}
}
