// The shop on the real mesh, end to end through the edge gateway: a Consul
// dev agent, the control plane in-process, an outrigger sidecar (in-process,
// configured only over xDS) in front of every service, an outrigger
// ingress gateway with JWT validation and a rate limit, real Redis, an
// embedded NATS JetStream server, and every service in a process of its own
// (this test binary re-executed, see TestMain) so that one can really be
// killed and each exports its spans under its own service.name to an
// in-process OTLP collector.
package shop_test

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/controlplane/consul"
	"github.com/outrigger-mesh/outrigger/controlplane/model"
	cpserver "github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/analytics"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/events"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/notifications"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/orders"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/payments"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/sqlitedb"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/users"
	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// childEnv names the service a re-executed test binary runs instead of the
// tests.
const childEnv = "SHOP_MESH_SERVICE"

// TestMain runs one shop service when the binary was started by
// startService, and the tests otherwise.
func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		os.Exit(runService(name, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runService is a service's main: Run until SIGTERM or SIGINT.
func runService(name string, args []string) int {
	runs := map[string]func(context.Context, []string, *slog.Logger) error{
		"users": users.Run, "orders": orders.Run, "payments": payments.Run,
		"notifications": notifications.Run, "analytics": analytics.Run,
	}
	run, ok := runs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s=%q: no such service\n", childEnv, name)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("service", name)
	if err := run(ctx, args, logger); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// service is one shop service in its own process.
type service struct {
	t       *testing.T
	name    string // instance, e.g. payments-1
	args    []string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// startService runs run (a name of runService's) as instance with args in
// a child process until stop, kill or the end of the test.
func startService(t *testing.T, instance, run string, env []string, args ...string) *service {
	t.Helper()
	s := &service{t: t, name: instance, args: args, logPath: filepath.Join(t.TempDir(), instance+".log"),
		env: append(append(os.Environ(), childEnv+"="+run), env...)}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("%s's log:\n%s", instance, tail(string(b), 40))
		}
	})
	return s
}

func (s *service) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
}

// stop sends SIGTERM and expects a clean exit; kill sends SIGKILL.
func (s *service) stop() { s.end(syscall.SIGTERM) }
func (s *service) kill() { s.end(syscall.SIGKILL) }

func (s *service) end(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Errorf("%s did not stop on %v", s.name, sig)
		return
	}
	if sig == syscall.SIGTERM && !cmd.ProcessState.Success() {
		s.t.Errorf("%s exited %v on SIGTERM", s.name, cmd.ProcessState)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startControlPlane runs outrigger-cp's watcher and xDS server in-process
// (as controlplane/e2e does) and returns its address.
func startControlPlane(t *testing.T, client *api.Client) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "cp", Level: hclog.Warn, Output: testWriter{t}})
	srv := cpserver.New(cpserver.Options{Logger: log, Registry: prometheus.NewRegistry()})
	w := consul.NewWatcher(client, consul.Options{Logger: log.Named("consul"), WaitTime: 2 * time.Second,
		RequestTimeout: time.Second, Debounce: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = w.Run(ctx, func(m *model.Mesh) { srv.Update(m); srv.SetConsulUp(w.Up()) })
	}()
	go func() {
		defer wg.Done()
		_ = srv.Run(ctx, lis)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return lis.Addr().String()
}

// waitJetStream waits for the ORDERS stream, and for the durable consumer
// when one is named.
func waitJetStream(t *testing.T, url, durable string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	shoptest.Eventually(t, 20*time.Second, fmt.Sprintf("stream %s, consumer %q", events.Stream, durable), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := js.Stream(ctx, events.Stream)
		if err != nil || durable == "" {
			return err == nil
		}
		_, err = st.Consumer(ctx, durable)
		return err == nil
	})
}

// proxies are the in-process outrigger proxies of a test, stopped together
// at its end (each drains for a second).
type proxies struct {
	t     *testing.T
	cp    string
	mu    sync.Mutex
	stops []func()
}

func newProxies(t *testing.T, cpAddr string) *proxies {
	p := &proxies{t: t, cp: cpAddr}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		var wg sync.WaitGroup
		for _, stop := range p.stops {
			wg.Add(1)
			go func() { defer wg.Done(); stop() }()
		}
		wg.Wait()
	})
	return p
}

// start runs an outrigger proxy for Consul proxy ID id (node cluster
// cluster), configured only by the control plane, as controlplane/e2e's
// sidecars are.
func (p *proxies) start(id, cluster string) {
	t := p.t
	t.Helper()
	// The bootstrap outrigger-cp's bootstrap command writes, without an
	// admin listener, incremental xDS.
	bs, err := sidecarboot.Config(sidecarboot.Options{ID: id, Service: cluster, XDSAddr: p.cp, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.FromProto(bs)
	if err != nil {
		t.Fatalf("bootstrap for %s: %v", id, err)
	}
	srv, err := server.New(server.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: testWriter{t}}),
		Bootstrap:    b,
		DrainTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("proxy %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stops = append(p.stops, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy %s: %v", id, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("proxy %s did not stop", id)
		}
	})
}

// register puts a service instance with its sidecar in Consul, as
// examples/shop/consul/<id>.hcl does, but on the given ports and with a
// passing TTL check on the sidecar instead of Consul's TCP and alias checks
// (which would only add Consul's check latency to the test).
func register(t *testing.T, c *api.Client, name, id, version string, port, sidecarPort int, upstreams ...api.Upstream) {
	t.Helper()
	meta := map[string]string{"version": version}
	reg := &api.AgentServiceRegistration{
		Name: name, ID: id, Address: "127.0.0.1", Port: port, Meta: meta,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port: sidecarPort, Meta: meta,
			Proxy:  &api.AgentServiceConnectProxyConfig{Upstreams: upstreams},
			Checks: api.AgentServiceChecks{{CheckID: "ttl:" + id, Name: "ttl", TTL: "10m", Status: api.HealthPassing}},
		}},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// consulWrite runs `consul config write` on one of examples/shop/consul's
// files against the agent.
func consulWrite(t *testing.T, agent *consultest.Agent, file string) {
	t.Helper()
	out, err := exec.Command(consultest.Binary(t), "config", "write", "-http-addr=http://"+agent.Addr, filepath.Join("consul", file)).CombinedOutput()
	if err != nil {
		t.Fatalf("consul config write %s: %v\n%s", file, err, out)
	}
}

func writeEntry(t *testing.T, c *api.Client, e api.ConfigEntry) {
	t.Helper()
	if ok, _, err := c.ConfigEntries().Set(e, nil); err != nil || !ok {
		t.Fatalf("write %s %s: ok=%v err=%v", e.GetKind(), e.GetName(), ok, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(shoptest.FreeAddr(t))
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// issuer signs ES256 tokens; its key set is given to the jwt-provider
// entry inline (Local.JWKS).
type issuer struct{ key *ecdsa.PrivateKey }

func newIssuer(t *testing.T) *issuer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{key: key}
}

func (is *issuer) jwks() string {
	coord := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pub, _ := is.key.PublicKey.ECDH()
	raw := pub.Bytes() // 0x04 || X || Y
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": coord(raw[1:33]), "y": coord(raw[33:]),
	}}})
	return string(b)
}

func (is *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, is.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// collector is an in-process OTLP/gRPC trace service keeping, per trace
// id, the service.name of every span's resource.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	services map[string]map[string]int // trace id -> service.name -> spans
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				id := hex.EncodeToString(sp.GetTraceId())
				if c.services[id] == nil {
					c.services[id] = map[string]int{}
				}
				c.services[id][svc]++
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) servicesOf(traceID string) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.services[traceID] {
		out[k] = v
	}
	return out
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{services: map[string]map[string]int{}}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, c)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return c, lis.Addr().String()
}

// shop is the running mesh, seen from outside: the gateway's address and
// the pieces the test pokes at.
type shop struct {
	t        *testing.T
	gateway  string // 127.0.0.1:port of the gateway's HTTP listener (users; orders has a grpc one)
	token    string
	hc       *http.Client
	orders   shoppb.OrdersClient
	dir      string
	usersApp string // users' own address, for /metrics
}

const (
	usersHost  = "users.shop.test"
	ordersHost = "orders.shop.test"
)

// createUser POSTs a user through the gateway and returns the status and id.
func (s *shop) createUser(token, name string) (int, string) {
	code, id, _ := s.createUserLimit(token, name)
	return code, id
}

// createUserLimit is createUser, also returning the gateway's
// x-ratelimit-limit.
func (s *shop) createUserLimit(token, name string) (int, string, string) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.gateway+"/users", strings.NewReader(fmt.Sprintf(`{"name":%q,"email":"%s@example.com"}`, name, name)))
	req.Host = usersHost
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err.Error(), ""
	}
	defer resp.Body.Close()
	var u struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&u)
	return resp.StatusCode, u.ID, resp.Header.Get("X-Ratelimit-Limit")
}

// getUser GETs a user through the gateway: status and X-Cache.
func (s *shop) getUser(id string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.gateway+"/users/"+id, nil)
	req.Host = usersHost
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache")
}

// order creates an order through the gateway with a valid token.
func (s *shop) order(ctx context.Context, requestID, userID string, amount int64) (*shoppb.Order, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.orders.CreateOrder(ctx, &shoppb.CreateOrderRequest{RequestId: requestID, UserId: userID, Item: "tea", AmountCents: amount})
}

// orderWithRetries is loadgen's -retries: an order that failed
// UNAVAILABLE or DEADLINE_EXCEEDED is sent again with the same request id
// (here up to 60 times, 100 ms apart), which orders answers from the paid
// order or by retrying the charge under the same idempotency key.
func (s *shop) orderWithRetries(requestID, userID string, amount int64, retries *atomic.Int64) (*shoppb.Order, error) {
	for attempt := 0; ; attempt++ {
		o, err := s.order(context.Background(), requestID, userID, amount)
		code := status.Code(err)
		if err == nil || attempt == 60 || (code != codes.Unavailable && code != codes.DeadlineExceeded) {
			return o, err
		}
		retries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
}

// countRows runs a COUNT query on one of the services' SQLite files.
func countRows(t *testing.T, path, query string, args ...any) int {
	t.Helper()
	n, err := count(path, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func count(path, query string, args ...any) (int, error) {
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s on %s: %w", query, path, err)
	}
	return n, nil
}

// ids lists a column of one of the services' SQLite files, sorted.
func ids(t *testing.T, path, query string) []string {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s on %s: %v", query, path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestShopOnMesh: the shop behind outrigger sidecars and the edge gateway,
// driven only through the gateway (numbers as in issue 10's tests):
//  1. users and orders with a valid JWT; none: 401 (UNAUTHENTICATED);
//  2. payments-1 SIGKILLed under load and restarted: every order paid and
//     charged exactly once (clients retry UNAVAILABLE with the same
//     request id, as loadgen -retries does);
//  5. notifications stopped while orders are paid, restarted: one
//     notification per paid order, none missed or doubled;
//  3. a 50/50 splitter: the payments versions' shares over up to 2,000
//     orders within ±5 % (wider if fewer fit in 20 s);
//  4. a deny intention orders -> payments: PERMISSION_DENIED naming
//     payments, nothing charged; deleted: the same order goes through;
//  6. Redis stopped: users answers from SQLite, counted in its metrics;
//  7. the first order's trace in spans of at least four services and
//     the edge gateway's (tracing configured by outrigger-cp).
func TestShopOnMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Consul agent, redis-server and a minute; skipped in -short mode")
	}
	began := time.Now()
	phase := func(what string, since time.Time) {
		t.Logf("%-40s %v", what, time.Since(since).Round(time.Millisecond))
	}
	redis := shoptest.StartRedis(t) // skips without redis-server
	natsURL := shoptest.StartNATS(t).ClientURL()
	coll, collAddr := startCollector(t)
	agent := consultest.Start(t)
	c := agent.Client
	cpAddr := startControlPlane(t, c)
	dir := t.TempDir()

	// Protocols, subsets, the retry router and the 50/50 split: the files
	// the demo uses.
	for _, f := range []string{"users-defaults.hcl", "orders-defaults.hcl", "payments-defaults.hcl", "notifications-defaults.hcl",
		"analytics-defaults.hcl", "payments-resolver.hcl", "payments-router.hcl", "payments-splitter-50-50.hcl"} {
		consulWrite(t, agent, f)
	}
	// Tracing in every proxy (outrigger-cp's proxy-defaults keys), to the
	// same collector as the apps: the edge's spans join the trace.
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"outrigger_otlp_address": collAddr, "outrigger_trace_sampling": 100}})

	// Ports: each app's, each sidecar's public listener, orders' upstreams.
	port := map[string]int{}
	for _, n := range []string{"users", "orders", "orders-admin", "payments-1", "payments-1-admin", "payments-2", "payments-2-admin",
		"notifications", "analytics", "users-sidecar", "orders-sidecar", "payments-1-sidecar", "payments-2-sidecar",
		"notifications-sidecar", "analytics-sidecar", "up-users", "up-payments", "gateway", "gateway-grpc", "gateway-service"} {
		port[n] = freePort(t)
	}
	register(t, c, "users", "users-1", "v1", port["users"], port["users-sidecar"])
	register(t, c, "orders", "orders-1", "v1", port["orders"], port["orders-sidecar"],
		api.Upstream{DestinationName: "users", LocalBindPort: port["up-users"]},
		api.Upstream{DestinationName: "payments", LocalBindPort: port["up-payments"]})
	register(t, c, "payments", "payments-1", "v1", port["payments-1"], port["payments-1-sidecar"])
	register(t, c, "payments", "payments-2", "v2", port["payments-2"], port["payments-2-sidecar"])
	register(t, c, "notifications", "notifications-1", "v1", port["notifications"], port["notifications-sidecar"])
	register(t, c, "analytics", "analytics-1", "v1", port["analytics"], port["analytics-sidecar"])
	px := newProxies(t, cpAddr)
	for id, cluster := range map[string]string{"users-1": "users", "orders-1": "orders", "payments-1": "payments",
		"payments-2": "payments", "notifications-1": "notifications", "analytics-1": "analytics"} {
		px.start(id+"-sidecar-proxy", cluster)
	}

	// The edge: a jwt-provider with a key set made here, the gateway entry
	// routing by host, a generous rate limit, and an outrigger registered
	// as the ingress gateway.
	is := newIssuer(t)
	writeEntry(t, c, &api.JWTProviderConfigEntry{Kind: api.JWTProvider, Name: "shop-idp", Issuer: "https://idp.shop.test",
		Audiences:     []string{"shop"},
		JSONWebKeySet: &api.JSONWebKeySet{Local: &api.LocalJWKS{JWKS: base64.StdEncoding.EncodeToString([]byte(is.jwks()))}}})
	writeEntry(t, c, &api.IngressGatewayConfigEntry{Kind: api.IngressGateway, Name: "edge",
		Meta: map[string]string{"outrigger.io/jwt-providers": "shop-idp", "outrigger.io/rate-limit": "5000/s"},
		Listeners: []api.IngressListener{
			{Port: port["gateway"], Protocol: "http", Services: []api.IngressService{{Name: "users", Hosts: []string{usersHost}}}},
			// Consul wants a listener's protocol to be its services'.
			{Port: port["gateway-grpc"], Protocol: "grpc", Services: []api.IngressService{{Name: "orders", Hosts: []string{ordersHost}}}},
		}})
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Kind: api.ServiceKindIngressGateway, Name: "edge", ID: "edge-1",
		Address: "127.0.0.1", Port: port["gateway-service"]}); err != nil {
		t.Fatal(err)
	}
	px.start("edge-1", "edge")

	// The services, each in its own process, exporting spans to coll.
	otelEnv := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + collAddr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_BSP_SCHEDULE_DELAY=200"}
	paymentsDB, ordersDB, notificationsDB := filepath.Join(dir, "payments.db"), filepath.Join(dir, "orders.db"), filepath.Join(dir, "notifications.db")
	usersApp := loopback(port["users"])
	var all []*service
	launch := func(instance, run string, env []string, args ...string) *service {
		svc := startService(t, instance, run, env, args...)
		all = append(all, svc)
		return svc
	}
	launch("users", "users", otelEnv, "-addr", usersApp, "-redis", redis.Addr, "-db", filepath.Join(dir, "users.db"))
	payments1Args := []string{"-addr", loopback(port["payments-1"]), "-admin-addr", loopback(port["payments-1-admin"]), "-db", paymentsDB, "-version", "v1"}
	payments1 := launch("payments-1", "payments", otelEnv, payments1Args...)
	launch("payments-2", "payments", otelEnv, "-addr", loopback(port["payments-2"]), "-admin-addr", loopback(port["payments-2-admin"]),
		"-db", paymentsDB, "-version", "v2")
	launch("orders", "orders", otelEnv, "-addr", loopback(port["orders"]), "-admin-addr", loopback(port["orders-admin"]),
		"-db", ordersDB, "-payments-addr", loopback(port["up-payments"]), "-users-url", "http://"+loopback(port["up-users"]), "-nats-url", natsURL)
	// One at a time into JetStream: each service creates or updates the
	// stream, and the consumers create theirs; nats-server v2.15.2 races
	// (go test -race) on a stream update concurrent with another client's
	// consumer creation, so the next starts once the last is in.
	waitJetStream(t, natsURL, "")
	notifArgs := []string{"-addr", loopback(port["notifications"]), "-db", notificationsDB, "-nats-url", natsURL}
	notif := launch("notifications", "notifications", otelEnv, notifArgs...)
	waitJetStream(t, natsURL, "notifications")
	launch("analytics", "analytics", otelEnv, "-addr", loopback(port["analytics"]), "-nats-url", natsURL)
	waitJetStream(t, natsURL, "analytics")

	// At the end, all stop together (each takes a second or two).
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, svc := range all {
			wg.Add(1)
			go func() { defer wg.Done(); svc.stop() }()
		}
		wg.Wait()
	})

	token := is.token(t, map[string]any{"iss": "https://idp.shop.test", "aud": "shop", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	cc, err := grpc.NewClient(loopback(port["gateway-grpc"]), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(ordersHost))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	s := &shop{t: t, gateway: loopback(port["gateway"]), token: token, hc: &http.Client{Timeout: 10 * time.Second},
		orders: shoppb.NewOrdersClient(cc), dir: dir, usersApp: usersApp}
	phase("started (Consul, cp, 7 proxies, 6 services)", began)

	// 1. Users and orders through the gateway, with a valid JWT.
	step := time.Now()
	var userIDs []string
	shoptest.Eventually(t, 30*time.Second, "the gateway to create a user", func() bool {
		code, id := s.createUser(token, "ada")
		if code == http.StatusCreated {
			userIDs = append(userIDs, id)
		}
		return code == http.StatusCreated
	})
	phase("gateway -> users answered after", step)
	for i := range 4 {
		code, id := s.createUser(token, fmt.Sprintf("user%d", i))
		if code != http.StatusCreated {
			t.Fatalf("create user %d: %d %s", i, code, id)
		}
		userIDs = append(userIDs, id)
	}
	if code, _, limit := s.createUserLimit(token, "grace"); code != http.StatusCreated || limit != "5000" {
		t.Errorf("create user: %d, x-ratelimit-limit %q; want 201 under the gateway's 5000/s limit", code, limit)
	}
	if code, _ := s.createUser("", "mallory"); code != http.StatusUnauthorized {
		t.Errorf("create user without a token: %d, want 401", code)
	}
	if _, err := s.orders.CreateOrder(context.Background(), &shoppb.CreateOrderRequest{UserId: userIDs[0], Item: "tea", AmountCents: 100}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("order without a token: %v, want UNAUTHENTICATED (HTTP 401 at the gateway)", err)
	}
	// The first order carries a trace id of ours (7.).
	traceID := hex.EncodeToString(randBytes(16))
	traceCtx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+hex.EncodeToString(randBytes(8))+"-01")
	var first *shoppb.Order
	shoptest.Eventually(t, 30*time.Second, "the gateway to create an order", func() bool {
		first, err = s.order(traceCtx, "first", userIDs[0], 1250)
		return err == nil
	})
	if first.Status != "paid" || first.ChargeId == "" {
		t.Fatalf("first order: %+v", first)
	}
	if _, err := s.order(context.Background(), "", "nobody", 100); status.Code(err) != codes.NotFound {
		t.Errorf("order for an unknown user: %v, want NOT_FOUND (users checked through orders' sidecar)", err)
	}
	phase("1. users and orders through the gateway", step)

	// 2. payments-1 killed (SIGKILL) under load, restarted 1.5 s later.
	step = time.Now()
	var retries atomic.Int64
	var mu sync.Mutex
	var sent []string
	var failed []string
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				id := fmt.Sprintf("kill-%d-%d", w, i)
				_, err := s.orderWithRetries(id, userIDs[i%len(userIDs)], 500, &retries)
				mu.Lock()
				sent = append(sent, id)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", id, err))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // load before the kill: this is the schedule, not a synchronization
	payments1.kill()
	t.Logf("payments-1 killed with %d orders done", countRows(t, ordersDB, `SELECT COUNT(*) FROM orders WHERE id LIKE 'kill-%'`))
	time.Sleep(1500 * time.Millisecond)
	payments1.start()
	time.Sleep(1500 * time.Millisecond)
	close(stopLoad)
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d orders failed despite retries: %q", len(failed), len(sent), failed[:min(len(failed), 5)])
	}
	paid := countRows(t, ordersDB, `SELECT COUNT(*) FROM orders WHERE id LIKE 'kill-%' AND status = 'paid'`)
	charges := countRows(t, paymentsDB, `SELECT COUNT(*) FROM charges WHERE order_id LIKE 'kill-%'`)
	chargedOrders := countRows(t, paymentsDB, `SELECT COUNT(DISTINCT order_id) FROM charges WHERE order_id LIKE 'kill-%'`)
	t.Logf("2. kill: %d orders sent, %d paid, %d charges for %d orders, %d retries", len(sent), paid, charges, chargedOrders, retries.Load())
	if paid != len(sent) || charges != len(sent) || chargedOrders != len(sent) {
		t.Errorf("payments-1 killed: %d orders sent, %d paid, %d charges for %d orders; want all equal", len(sent), paid, charges, chargedOrders)
	}
	if retries.Load() == 0 {
		t.Logf("no order needed a retry: the kill fell between requests")
	}
	phase("2. payments-1 killed under load", step)

	// 5. notifications stopped, orders made, notifications restarted: it
	// catches up on exactly the paid orders (JetStream acks, a durable
	// consumer). Done before the canary because notifications acks each
	// event after storing it, a round trip each, and would trail 2,000
	// orders by tens of seconds on this box.
	step = time.Now()
	notif.stop()
	const whileDown = 20
	for i := range whileDown {
		if _, err := s.order(context.Background(), fmt.Sprintf("down-%d", i), userIDs[i%len(userIDs)], 900); err != nil {
			t.Fatalf("order while notifications is down: %v", err)
		}
	}
	notif.start()
	paidN := countRows(t, ordersDB, `SELECT COUNT(*) FROM orders WHERE status = 'paid'`)
	shoptest.Eventually(t, 45*time.Second, fmt.Sprintf("notifications to catch up on %d paid orders", paidN), func() bool {
		time.Sleep(100 * time.Millisecond)
		return countRows(t, notificationsDB, `SELECT COUNT(*) FROM sent`) >= paidN
	})
	want := ids(t, ordersDB, `SELECT id FROM orders WHERE status = 'paid'`)
	got := ids(t, notificationsDB, `SELECT order_id FROM sent`)
	if !slices.Equal(want, got) {
		t.Errorf("notifications sent for %d orders, %d paid; want the same orders", len(got), len(want))
	}
	t.Logf("5. notifications: %d sent for %d paid orders, %d of them paid while notifications was down", len(got), len(want), whileDown)
	phase("5. notifications restarted, caught up", step)

	// 3. The canary split over as many orders as fit in ~20 s (2,000 at
	// most).
	step = time.Now()
	versions := map[string]int{}
	var canaryFailed []string
	next := atomic.Int64{}
	const canaryMax = 2000
	deadline := time.Now().Add(20 * time.Second)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > canaryMax {
					return
				}
				o, err := s.order(context.Background(), fmt.Sprintf("canary-%d", i), userIDs[int(i)%len(userIDs)], 300)
				mu.Lock()
				if err != nil {
					canaryFailed = append(canaryFailed, err.Error())
				} else {
					versions[o.PaymentsVersion]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n := versions["v1"] + versions["v2"]
	// ±5 % over 2,000 orders; fewer orders widen it to the binomial 3σ
	// bound of a fair split, 3·sqrt(0.25/n) (±5 % is 3σ at n = 900).
	tol := max(0.05, 3*math.Sqrt(0.25/float64(n)))
	share := float64(versions["v2"]) / float64(n)
	t.Logf("3. canary: %d orders in %v, v1=%d v2=%d, v2 share %.3f (tolerance ±%.3f), %d failed",
		n, time.Since(step).Round(time.Millisecond), versions["v1"], versions["v2"], share, tol, len(canaryFailed))
	if n == 0 || math.Abs(share-0.5) > tol || len(versions) != 2 {
		t.Errorf("50/50 split: %v over %d orders, want v2 share 0.5±%.3f", versions, n, tol)
	}
	if len(canaryFailed) > 0 {
		t.Errorf("%d canary orders failed: %q", len(canaryFailed), canaryFailed[:min(len(canaryFailed), 5)])
	}
	phase("3. canary", step)

	// 4. A deny intention orders -> payments: orders fail with
	// PERMISSION_DENIED, charge nothing; deleting it restores them.
	step = time.Now()
	writeEntry(t, c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "payments",
		Sources: []*api.SourceIntention{{Name: "orders", Action: api.IntentionActionDeny}}})
	var denied error
	var deniedIDs []string
	shoptest.Eventually(t, 10*time.Second, "the deny intention to fail orders", func() bool {
		id := fmt.Sprintf("deny-%d", len(deniedIDs))
		deniedIDs = append(deniedIDs, id)
		_, denied = s.order(context.Background(), id, userIDs[0], 700)
		return status.Code(denied) == codes.PermissionDenied
	})
	if msg := status.Convert(denied).Message(); !strings.Contains(msg, "payments") {
		t.Errorf("denied order's error %q does not name payments", msg)
	}
	t.Logf("4. denied: %v", denied)
	lastDenied := deniedIDs[len(deniedIDs)-1]
	if n := countRows(t, paymentsDB, `SELECT COUNT(*) FROM charges WHERE order_id = ?`, lastDenied); n != 0 {
		t.Errorf("denied order %s was charged %d times", lastDenied, n)
	}
	if _, err := c.ConfigEntries().Delete(api.ServiceIntentions, "payments", nil); err != nil {
		t.Fatal(err)
	}
	// The same request id again once allowed: paid, charged once.
	var restored *shoppb.Order
	shoptest.Eventually(t, 10*time.Second, "orders to pass once the intention is deleted", func() bool {
		restored, err = s.order(context.Background(), lastDenied, userIDs[0], 700)
		return err == nil
	})
	if restored.Status != "paid" || countRows(t, paymentsDB, `SELECT COUNT(*) FROM charges WHERE order_id = ?`, lastDenied) != 1 {
		t.Errorf("order %s after the intention's deletion: %+v, want paid and charged once", lastDenied, restored)
	}
	phase("4. deny intention", step)

	// 6. Redis stopped: users still answers, from SQLite, counted.
	step = time.Now()
	if code, cache := s.getUser(userIDs[1]); code != http.StatusOK || (cache != "hit" && cache != "miss") {
		t.Errorf("GET user with Redis up: %d X-Cache %q", code, cache)
	}
	redis.Stop()
	before := metricValue(t, "http://"+usersApp+"/metrics", `users_cache_lookups_total{result="error"}`)
	if code, cache := s.getUser(userIDs[1]); code != http.StatusOK || cache != "error" {
		t.Errorf("GET user with Redis stopped: %d X-Cache %q, want 200 error", code, cache)
	}
	if after := metricValue(t, "http://"+usersApp+"/metrics", `users_cache_lookups_total{result="error"}`); after != before+1 {
		t.Errorf("users_cache_lookups_total{result=\"error\"} %v -> %v, want +1", before, after)
	}
	phase("6. Redis stopped", step)

	// 7. The first order's trace, in spans from at least four services.
	step = time.Now()
	var svcs map[string]int
	shoptest.Eventually(t, 15*time.Second, "spans of the first order's trace from four services and the edge", func() bool {
		svcs = coll.servicesOf(traceID)
		return len(svcs) >= 4 && svcs["edge"] > 0
	})
	t.Logf("7. trace %s: spans by service %v", traceID, svcs)
	phase("7. trace", step)
	phase("whole test", began)
}

// metricValue reads one sample line's value from a Prometheus text page.
func metricValue(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscanf(v, "%g", &f)
			return f
		}
	}
	t.Fatalf("%s has no %s", url, sample)
	return 0
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
