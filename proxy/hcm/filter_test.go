package hcm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// recordingFilter is a stand-in HTTPFilter: it records what it saw and
// answers with deny when the request carries x-deny. The real filters
// (proxy/rbac, proxy/jwtauthn, ...) are tested end to end in proxy/server.
type recordingFilter struct {
	name string
	log  *[]string
	mu   *sync.Mutex
	seen int
}

func (f *recordingFilter) Decode(w http.ResponseWriter, r *http.Request, in *FilterInput) Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	per, _ := in.PerRoute(f.name).(string)
	*f.log = append(*f.log, f.name+":"+in.Cluster+":"+per)
	f.seen++
	if r.Header.Get("X-Deny") == f.name {
		w.Header().Set("X-Denied-By", f.name)
		st, gs := forward.WriteReply(w, r, http.StatusForbidden, "denied by "+f.name)
		return Verdict{Status: st, GRPCStatus: gs, Flag: "XX"}
	}
	return Verdict{}
}

func (f *recordingFilter) Stats() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]uint64{"test.seen": uint64(f.seen)}
}

// Filters run in their listed order with faults between them, see the
// route's or else the virtual host's per-filter config, stop the chain
// (router included) with a protocol-shaped reply, and run on direct
// responses too; a request that matches no route never reaches them.
func TestHTTPFilterChain(t *testing.T) {
	table, err := router.New(&router.Config{VirtualHosts: []router.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		PerFilter: map[string]any{"a": "vhost-a", "b": "vhost-b"},
		Routes: []router.Route{
			{Match: router.Match{Prefix: "/direct"}, Direct: &router.DirectResponse{Status: 200, Body: []byte("ok")}},
			{Match: router.Match{Prefix: "/svc"}, Forward: &router.ForwardAction{Cluster: "svc"}, PerFilter: map[string]any{"a": "route-a"}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	mu := &sync.Mutex{}
	a := &recordingFilter{name: "a", log: &log, mu: mu}
	b := &recordingFilter{name: "b", log: &log, mu: mu}
	present := true
	abort := &fault.Config{
		Abort:   &fault.Abort{Kind: fault.AbortHTTP, HTTPStatus: 418, Percent: fault.Percent(100)},
		Headers: []router.HeaderMatcher{{Name: "x-fault", Present: &present}},
	}
	h := New(Config{Filters: []Filter{{HTTP: a}, {Fault: abort}, {HTTP: b}}}, table, Deps{Clusters: noClusters{}})

	for _, tc := range []struct {
		name    string
		path    string
		hdr     map[string]string
		status  int
		grpc    string
		wantLog string
	}{
		{"both pass, router answers NC", "/svc/x", nil, 503, "", "a:svc:route-a b:svc:vhost-b"},
		{"first denies", "/svc/x", map[string]string{"X-Deny": "a"}, 403, "", "a:svc:route-a"},
		{"second denies", "/svc/x", map[string]string{"X-Deny": "b"}, 403, "", "a:svc:route-a b:svc:vhost-b"},
		{"fault between them", "/svc/x", map[string]string{"X-Fault": "1"}, 418, "", "a:svc:route-a"},
		{"direct response filtered", "/direct", map[string]string{"X-Deny": "b"}, 403, "", "a::vhost-a b::vhost-b"},
		{"fault skips direct responses", "/direct", map[string]string{"X-Fault": "1"}, 200, "", "a::vhost-a b::vhost-b"},
		{"gRPC denial", "/svc/x", map[string]string{"X-Deny": "a", "Content-Type": "application/grpc"}, 200, "7", "a:svc:route-a"},
		{"no route: filters never run", "/nowhere", map[string]string{"X-Deny": "a"}, 404, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log = log[:0]
			obs := &lastEntry{}
			h.deps.Observer = obs
			r := httptest.NewRequest("GET", tc.path, nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || rec.Header().Get("Grpc-Status") != tc.grpc {
				t.Errorf("got %d grpc-status %q, want %d %q", rec.Code, rec.Header().Get("Grpc-Status"), tc.status, tc.grpc)
			}
			if got := strings.Join(log, " "); got != tc.wantLog {
				t.Errorf("filters saw %q, want %q", got, tc.wantLog)
			}
			if tc.hdr["X-Deny"] != "" && tc.status != 404 {
				if rec.Header().Get("X-Denied-By") != tc.hdr["X-Deny"] {
					t.Errorf("the denying filter's header is missing: %v", rec.Header())
				}
				if obs.e.Status != tc.status || obs.e.ResponseFlags != "XX" || obs.e.GRPCStatus != tc.grpc {
					t.Errorf("access log: status %d flags %q grpc %q", obs.e.Status, obs.e.ResponseFlags, obs.e.GRPCStatus)
				}
			}
		})
	}
	st := h.FilterStats()
	if st["test.seen"] == 0 || st["fault.aborts_injected"] != 1 {
		t.Errorf("filter stats %v", st)
	}
}
