package hcm

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
)

// lastEntry keeps the access-log entry of the last request.
type lastEntry struct{ e telemetry.Entry }

func (l *lastEntry) Observe(e *telemetry.Entry) { l.e = *e }

// noClusters knows no cluster: requests that get that far are answered NC.
type noClusters struct{}

func (noClusters) Upstream(string) (forward.Upstream, bool) { return nil, false }

// The proxy's own replies to a gRPC-Web request: where the grpc_web filter
// sits decides their shape, the router's replies are always gRPC-Web, and
// the access log records the gRPC status the client got (the unit-level
// side of proxy/server's TestGRPCWebFaultOrder).
func TestGRPCWebReplies(t *testing.T) {
	table, err := router.New(&router.Config{VirtualHosts: []router.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []router.Route{
			{Match: router.Match{Prefix: "/direct"}, Direct: &router.DirectResponse{Status: 403, Body: []byte("go away")}},
			{Match: router.Match{Prefix: "/svc/"}, Forward: &router.ForwardAction{Cluster: "svc"}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	present := true
	abort := &fault.Config{
		Abort:   &fault.Abort{Kind: fault.AbortHTTP, HTTPStatus: 503, Percent: fault.Percent(100)},
		Headers: []router.HeaderMatcher{{Name: "x-fault", Present: &present}},
	}
	webFirst := []Filter{{GRPCWeb: true}, {Fault: abort}}
	faultFirst := []Filter{{Fault: abort}, {GRPCWeb: true}}
	const webCT, textCT = "application/grpc-web+proto", "application/grpc-web-text+proto"
	for _, tc := range []struct {
		name    string
		filters []Filter
		path    string
		fault   bool
		status  int
		ct      string
		grpc    string // grpc-status header and access log
	}{
		{"no route", webFirst, "/nowhere", false, 200, textCT, "12"},
		{"no route, fault first", faultFirst, "/nowhere", false, 200, textCT, "12"},
		{"direct response", webFirst, "/direct", false, 403, textCT, "7"},
		{"no cluster", faultFirst, "/svc/M", false, 200, textCT, "14"},
		{"fault after grpc_web", webFirst, "/svc/M", true, 200, textCT, "14"},
		{"fault before grpc_web", faultFirst, "/svc/M", true, 503, "text/plain; charset=utf-8", ""},
		{"no filter: not translated", []Filter{{Fault: abort}}, "/nowhere", false, 404, "text/plain; charset=utf-8", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &lastEntry{}
			h := New(Config{Filters: tc.filters}, table, Deps{Clusters: noClusters{}, Observer: obs})
			r := httptest.NewRequest("POST", tc.path, nil)
			r.Header.Set("Content-Type", "application/grpc-web-text")
			r.Header.Set("Accept", "application/grpc-web-text")
			if tc.fault {
				r.Header.Set("X-Fault", "1")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.ct || rec.Header().Get("Grpc-Status") != tc.grpc {
				t.Errorf("got %d %v %q", rec.Code, rec.Header(), rec.Body)
			}
			if tc.grpc != "" && rec.Body.Len() != 0 {
				t.Errorf("body %q", rec.Body)
			}
			if obs.e.GRPCStatus != tc.grpc || obs.e.Status != tc.status {
				t.Errorf("access log: status %d grpc_status %q", obs.e.Status, obs.e.GRPCStatus)
			}
		})
	}
	t.Run("not gRPC-Web: untouched", func(t *testing.T) {
		h := New(Config{Filters: webFirst}, table, Deps{Clusters: noClusters{}})
		r := httptest.NewRequest("POST", "/direct", nil)
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 403 || rec.Body.String() != "go away" || rec.Header().Get("Grpc-Status") != "" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %d %v %q", rec.Code, rec.Header(), rec.Body)
		}
	})
	t.Run("upgrade requests are not translated", func(t *testing.T) {
		h := New(Config{Filters: webFirst, Upgrades: []string{"websocket"}}, table, Deps{Clusters: noClusters{}})
		r := httptest.NewRequest("GET", "/nowhere", nil)
		r.Header.Set("Content-Type", "application/grpc-web")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusNotFound || rec.Header().Get("Grpc-Status") != "" {
			t.Errorf("got %d %v", rec.Code, rec.Header())
		}
	})
}
