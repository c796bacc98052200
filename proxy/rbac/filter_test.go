package rbac

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// onlyWeb allows the web service, anything.
func onlyWeb() *Rules {
	return &Rules{Action: Allow, Policies: []Policy{{Name: "allow-web",
		Permissions: []Rule{any_()},
		Principals:  []Rule{{Kind: KindAuthenticated, String: exact(webID)}}}}}
}

// denyPath denies a path prefix to everyone.
func denyPath(p string) *Rules {
	return &Rules{Action: Deny, Policies: []Policy{{Name: "deny-" + p,
		Permissions: []Rule{{Kind: KindURLPath, String: prefix(p)}},
		Principals:  []Rule{any_()}}}}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*logBuf, hclog.Logger) {
	b := &logBuf{}
	return b, hclog.New(&hclog.LoggerOptions{Output: b, Level: hclog.Info}).With("listener", "inbound")
}

// httpReq is a request from st's peer at 10.0.0.7:5555 to 10.1.0.1:8443.
func httpReq(method, target string, st *tls.ConnectionState, grpc bool) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "10.0.0.7:5555"
	r.TLS = st
	if grpc {
		r.Header.Set("Content-Type", "application/grpc")
		r.ProtoMajor = 2
	}
	local := &net.TCPAddr{IP: net.ParseIP("10.1.0.1"), Port: 8443}
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
}

func route(name string, per map[string]any) *hcm.FilterInput {
	return &hcm.FilterInput{Route: &router.Route{Name: name, PerFilter: per}, VHost: &router.VirtualHost{Name: "backend"}, Cluster: "app"}
}

func TestHTTPFilter(t *testing.T) {
	web := peer([]string{webID}, nil, "web")
	api := peer([]string{apiID}, nil, "api")
	buf, log := newLog()
	f, err := NewHTTPFilter("envoy.filters.http.rbac", HTTPConfig{Rules: onlyWeb(), ShadowRules: denyPath("/beta")})
	if err != nil {
		t.Fatal(err)
	}
	f.SetLogger(log)

	decode := func(r *http.Request, in *hcm.FilterInput) (*httptest.ResponseRecorder, hcm.Verdict) {
		w := httptest.NewRecorder()
		return w, f.Decode(w, r, in)
	}

	// Allowed: passes, nothing written.
	w, v := decode(httpReq("GET", "/x", web, false), route("r1", nil))
	if v.Stopped() || w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("allowed request: verdict %+v, reply %d %q", v, w.Code, w.Body)
	}
	// Denied: Envoy's 403 and body.
	w, v = decode(httpReq("GET", "/x", api, false), route("r1", nil))
	if v.Status != 403 || w.Code != 403 || w.Body.String() != DeniedBody || v.Flag != "" {
		t.Fatalf("denied request: verdict %+v, reply %d %q", v, w.Code, w.Body)
	}
	// gRPC: PERMISSION_DENIED, trailers-only.
	w, v = decode(httpReq("POST", "/pkg.Svc/Call", api, true), route("r1", nil))
	if !v.Stopped() || v.GRPCStatus != "7" || w.Header().Get("Grpc-Status") != "7" || w.Header().Get("Grpc-Message") != "RBAC: access denied" {
		t.Fatalf("denied gRPC call: verdict %+v, headers %v", v, w.Header())
	}
	// Shadow rules deny /beta: counted and logged, not enforced.
	_, v = decode(httpReq("GET", "/beta/x", web, false), route("r1", nil))
	if v.Stopped() {
		t.Fatalf("shadow rules were enforced: %+v", v)
	}
	// Plaintext caller: denied, named by its address.
	_, v = decode(httpReq("GET", "/x", nil, false), route("r1", nil))
	if v.Status != 403 {
		t.Fatalf("plaintext caller: %+v", v)
	}

	want := map[string]uint64{"rbac.allowed": 2, "rbac.denied": 3, "rbac.shadow_allowed": 4, "rbac.shadow_denied": 1}
	if got := f.Stats(); !equalStats(got, want) {
		t.Errorf("stats %v, want %v", got, want)
	}
	logs := buf.String()
	for _, s := range []string{
		"RBAC: access denied", "caller=" + apiID, "peer=10.0.0.7:5555", "local=10.1.0.1:8443", "route=r1", "virtual_host=backend",
		"listener=inbound", "path=/pkg.Svc/Call", "method=POST", "matched_policy=none",
		"RBAC: shadow rules deny the request (not enforced)", "matched_policy=deny-/beta", "caller=" + webID,
		"caller=10.0.0.7:5555",
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
	if n := strings.Count(logs, "RBAC: access denied"); n != 3 {
		t.Errorf("%d denials logged, want 3:\n%s", n, logs)
	}
}

func equalStats(got, want map[string]uint64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// RBACPerRoute replaces the filter's rules on a route, or turns them off.
func TestHTTPFilterPerRoute(t *testing.T) {
	const name = "rbac-in"
	api := peer([]string{apiID}, nil, "api")
	f, err := NewHTTPFilter(name, HTTPConfig{Rules: onlyWeb(), ShadowRules: denyPath("/")})
	if err != nil {
		t.Fatal(err)
	}
	off, err := NewRouteConfig(nil)
	if err != nil || !off.Disabled() {
		t.Fatalf("no rbac: %v %v", off, err)
	}
	empty, _ := NewRouteConfig(&HTTPConfig{})
	apiToo, err := NewRouteConfig(&HTTPConfig{Rules: &Rules{Action: Deny, Policies: []Policy{{Name: "no-admin",
		Permissions: []Rule{{Kind: KindURLPath, String: prefix("/admin")}}, Principals: []Rule{any_()}}}}})
	if err != nil || apiToo.Disabled() {
		t.Fatalf("override: %v %v", apiToo, err)
	}
	for _, tc := range []struct {
		name   string
		in     *hcm.FilterInput
		path   string
		status int
	}{
		{"filter's rules", route("r", nil), "/", 403},
		{"no route input", nil, "/", 403},
		{"disabled by RBACPerRoute without rbac", route("r", map[string]any{name: off}), "/", 0},
		{"disabled by rbac: {}", route("r", map[string]any{name: empty}), "/", 0},
		{"disabled on the virtual host", &hcm.FilterInput{Route: &router.Route{}, VHost: &router.VirtualHost{PerFilter: map[string]any{name: off}}}, "/", 0},
		{"override allows", route("r", map[string]any{name: apiToo}), "/x", 0},
		{"override denies", route("r", map[string]any{name: apiToo}), "/admin", 403},
		{"another filter's entry", route("r", map[string]any{"other": off}), "/", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if v := f.Decode(w, httpReq("GET", tc.path, api, false), tc.in); v.Status != tc.status {
				t.Errorf("status %d, want %d", v.Status, tc.status)
			}
		})
	}
	// The override replaces the shadow rules too: only the three requests
	// under the filter's own config saw them.
	st := f.Stats()
	if st["rbac.shadow_denied"] != 3 || st["rbac.denied"] != 4 || st["rbac.allowed"] != 1 {
		t.Errorf("stats %v", st)
	}
}

func TestHTTPFilterNoRules(t *testing.T) {
	f, err := NewHTTPFilter("rbac", HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if v := f.Decode(w, httpReq("GET", "/", nil, false), route("r", nil)); v.Stopped() {
		t.Fatalf("no rules enforced something: %+v", v)
	}
	for k, v := range f.Stats() {
		if v != 0 {
			t.Errorf("%s = %d: nothing is counted without rules", k, v)
		}
	}
	// Shadow only: counted, never enforced, and not counted as allowed.
	f, _ = NewHTTPFilter("rbac", HTTPConfig{ShadowRules: &Rules{Action: Allow}})
	if v := f.Decode(w, httpReq("GET", "/", nil, false), route("r", nil)); v.Stopped() {
		t.Fatalf("shadow rules enforced: %+v", v)
	}
	if st := f.Stats(); st["rbac.shadow_denied"] != 1 || st["rbac.allowed"] != 0 {
		t.Errorf("stats %v", st)
	}
}

func TestStatNames(t *testing.T) {
	f, err := NewHTTPFilter("rbac", HTTPConfig{RulesStatPrefix: "inbound", ShadowRulesStatPrefix: "test."})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"rbac.inbound.allowed": 0, "rbac.inbound.denied": 0, "rbac.test.shadow_allowed": 0, "rbac.test.shadow_denied": 0}
	if got := f.Stats(); !equalStats(got, want) {
		t.Errorf("HTTP stat names %v, want %v", got, want)
	}
	n, err := NewNetworkFilter(NetworkConfig{StatPrefix: "tcp_in", ShadowRulesStatPrefix: "dry_run"})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]uint64{"tcp_in.rbac.allowed": 0, "tcp_in.rbac.denied": 0, "tcp_in.rbac.dry_run.shadow_allowed": 0, "tcp_in.rbac.dry_run.shadow_denied": 0}
	if got := n.Stats(); !equalStats(got, want) {
		t.Errorf("network stat names %v, want %v", got, want)
	}
	n, _ = NewNetworkFilter(NetworkConfig{StatPrefix: "tcp_in."})
	if _, ok := n.Stats()["tcp_in.rbac.denied"]; !ok {
		t.Errorf("a stat_prefix ending in a dot: %v", n.Stats())
	}
	for _, tc := range [][3]string{{"", "a", "a"}, {"a", "", "a"}, {"a.", "b", "a.b"}, {"a", "b", "a.b"}} {
		if got := statPrefixJoin(tc[0], tc[1]); got != tc[2] {
			t.Errorf("statPrefixJoin(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestFilterConfigErrors(t *testing.T) {
	bad := &Rules{Policies: []Policy{{Name: "p", Principals: []Rule{any_()}}}}
	if _, err := NewHTTPFilter("rbac", HTTPConfig{Rules: bad}); err == nil || !strings.Contains(err.Error(), `rules.policies["p"].permissions: at least one`) {
		t.Errorf("HTTP rules: %v", err)
	}
	if _, err := NewHTTPFilter("rbac", HTTPConfig{ShadowRules: bad}); err == nil || !strings.HasPrefix(err.Error(), `shadow_rules.policies["p"]`) {
		t.Errorf("HTTP shadow rules: %v", err)
	}
	if _, err := NewRouteConfig(&HTTPConfig{Rules: bad}); err == nil || !strings.HasPrefix(err.Error(), `rbac.rules.policies["p"]`) {
		t.Errorf("route: %v", err)
	}
	if _, err := NewNetworkFilter(NetworkConfig{Rules: onlyWeb()}); err == nil || !strings.Contains(err.Error(), "stat_prefix") {
		t.Errorf("network without stat_prefix: %v", err)
	}
	if _, err := NewNetworkFilter(NetworkConfig{StatPrefix: "x", ShadowRules: denyPath("/")}); err == nil ||
		!strings.Contains(err.Error(), `shadow_rules.policies["deny-/"].permissions[0].url_path: url_path is only available to the HTTP filter`) {
		t.Errorf("network with url_path: %v", err)
	}
}

func TestNetworkFilter(t *testing.T) {
	buf, log := newLog()
	shadow := &Rules{Action: Allow, Policies: []Policy{{Name: "lan", Permissions: []Rule{any_()},
		Principals: []Rule{{Kind: KindDirectRemoteIP, CIDR: cidr("10.0.0.0/8")}}}}}
	f, err := NewNetworkFilter(NetworkConfig{StatPrefix: "tcp_in", Rules: onlyWeb(), ShadowRules: shadow})
	if err != nil {
		t.Fatal(err)
	}
	f.SetLogger(log)
	info := func(st *tls.ConnectionState, remote string) *listener.ConnInfo {
		return &listener.ConnInfo{
			Local:  &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9000},
			Remote: &net.TCPAddr{IP: net.ParseIP(remote), Port: 40000},
			TLS:    st,
		}
	}
	var _ listener.ConnFilter = f
	if !f.Admit(info(peer([]string{webID}, nil, "web"), "10.0.0.1")) {
		t.Error("web refused")
	}
	if f.Admit(info(peer([]string{apiID}, nil, "api"), "10.0.0.2")) {
		t.Error("api admitted")
	}
	if f.Admit(info(nil, "192.0.2.1")) {
		t.Error("plaintext admitted")
	}
	want := map[string]uint64{"tcp_in.rbac.allowed": 1, "tcp_in.rbac.denied": 2, "tcp_in.rbac.shadow_allowed": 2, "tcp_in.rbac.shadow_denied": 1}
	if got := f.Stats(); !equalStats(got, want) {
		t.Errorf("stats %v, want %v", got, want)
	}
	logs := buf.String()
	for _, s := range []string{"RBAC: connection denied", "caller=" + apiID, "peer=10.0.0.2:40000", "local=127.0.0.1:9000",
		"listener=inbound", "caller=192.0.2.1:40000", "RBAC: shadow rules deny the connection (not enforced)"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}

	// No rules: admitted, uncounted; an unset logger logs nothing.
	open, _ := NewNetworkFilter(NetworkConfig{StatPrefix: "x"})
	if !open.Admit(&listener.ConnInfo{}) {
		t.Error("no rules refused a connection")
	}
	deny, _ := NewNetworkFilter(NetworkConfig{StatPrefix: "x", Rules: &Rules{Action: Allow}})
	deny.SetLogger(nil)
	if deny.Admit(&listener.ConnInfo{}) {
		t.Error("ALLOW with no policies admitted a connection")
	}
}

// Decode and Admit are safe for concurrent use (run under -race).
func TestConcurrentUse(t *testing.T) {
	f, _ := NewHTTPFilter("rbac", HTTPConfig{Rules: onlyWeb(), ShadowRules: denyPath("/a")})
	n, _ := NewNetworkFilter(NetworkConfig{StatPrefix: "t", Rules: onlyWeb()})
	web := peer([]string{webID}, nil, "web")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, log := newLog()
			f.SetLogger(log)
			for j := 0; j < 100; j++ {
				f.Decode(httptest.NewRecorder(), httpReq("GET", "/a", web, false), route("r", nil))
				n.Admit(&listener.ConnInfo{TLS: web})
			}
		}()
	}
	wg.Wait()
	if st := f.Stats(); st["rbac.allowed"] != 800 || st["rbac.shadow_denied"] != 800 {
		t.Errorf("stats %v", st)
	}
}

// remote_ip matches the client address the connection manager worked out
// (x-forwarded-for aware), direct_remote_ip the peer.
func TestHTTPFilterRemoteIP(t *testing.T) {
	rules := &Rules{Action: Allow, Policies: []Policy{{
		Name: "clients", Permissions: []Rule{any_()},
		Principals: []Rule{{Kind: KindRemoteIP, CIDR: cidr("192.0.2.0/24")}},
	}}}
	f, err := NewHTTPFilter("rbac", HTTPConfig{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	in := route("r1", nil)
	in.ClientAddress = netip.MustParseAddr("192.0.2.9")
	if v := f.Decode(httptest.NewRecorder(), httpReq("GET", "/", nil, false), in); v.Stopped() {
		t.Errorf("client 192.0.2.9 behind peer 10.0.0.7 denied: %+v", v)
	}
	in.ClientAddress = netip.MustParseAddr("198.51.100.1")
	if v := f.Decode(httptest.NewRecorder(), httpReq("GET", "/", nil, false), in); v.Status != 403 {
		t.Errorf("client 198.51.100.1 allowed: %+v", v)
	}
}
