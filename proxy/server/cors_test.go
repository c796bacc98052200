package server_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

const corsFilter = `          - name: envoy.filters.http.cors
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
`

// corsVHosts: the virtual host allows https://app.test (credentials,
// exposed headers, max age); /open/ overrides the origins with "*" and the
// methods with "*"; /off/ disables the filter; /strict/ answers preflights
// from other origins itself.
const corsVHosts = `              - name: api
                domains: ["*"]
                typed_per_filter_config:
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                    allow_origin_string_match: [{exact: "https://app.test"}, {suffix: ".app.test"}]
                    allow_methods: "GET, POST, PUT"
                    allow_headers: "content-type, x-grpc-web, x-user-agent"
                    expose_headers: "grpc-status, grpc-message"
                    max_age: "1728000"
                    allow_credentials: true
                routes:
                - match: {prefix: "/open/"}
                  route: {cluster: be}
                  typed_per_filter_config:
                    envoy.filters.http.cors:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                      allow_origin_string_match: [{safe_regex: {regex: ".*"}}]
                      allow_methods: "*"
                      allow_credentials: false
                - match: {prefix: "/off/"}
                  route: {cluster: be}
                  typed_per_filter_config:
                    envoy.filters.http.cors:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                      filter_enabled: {default_value: {numerator: 0}}
                - match: {prefix: "/strict/"}
                  route: {cluster: be}
                  typed_per_filter_config:
                    envoy.filters.http.cors:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                      forward_not_matching_preflights: false
                - match: {prefix: "/direct"}
                  direct_response: {status: 200, body: {inline_string: "direct"}}
                - match: {prefix: "/"}
                  route: {cluster: be}
`

func TestCORS(t *testing.T) {
	var hits atomic.Int64
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Backend", r.Method)
		io.WriteString(w, "from backend")
	}))
	p := startProxy(t, bs{Admin: true, Filters: corsFilter, VirtualHosts: corsVHosts, Clusters: staticCluster("be", "", be)}.String())
	base := "http://" + p.addr["ingress"]

	tests := []struct {
		name      string
		method    string
		path      string
		hdr       map[string]string
		wantCode  int
		forwarded bool              // the backend saw it
		want      map[string]string // "" value: must be absent
	}{
		{
			name: "preflight answered by the proxy", method: "OPTIONS", path: "/svc/Method",
			hdr:      map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-grpc-web"},
			wantCode: 200,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Methods": "GET, POST, PUT",
				"Access-Control-Allow-Headers": "content-type, x-grpc-web, x-user-agent", "Access-Control-Max-Age": "1728000",
				"Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "", "X-Backend": "",
			},
		},
		{
			name: "actual request: headers added to the upstream's response", method: "POST", path: "/svc/Method",
			hdr:      map[string]string{"Origin": "https://web.app.test"},
			wantCode: 200, forwarded: true,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://web.app.test", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers": "grpc-status, grpc-message", "X-Backend": "POST", "Access-Control-Allow-Methods": "",
			},
		},
		{
			name: "origin not allowed: no CORS headers", method: "GET", path: "/svc/Method",
			hdr:      map[string]string{"Origin": "https://evil.test"},
			wantCode: 200, forwarded: true,
			want: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "", "X-Backend": "GET"},
		},
		{
			name: "preflight from a bad origin goes upstream", method: "OPTIONS", path: "/svc/Method",
			hdr:      map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
			wantCode: 200, forwarded: true,
			want: map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "OPTIONS"},
		},
		{
			name: "no Origin: a plain request", method: "GET", path: "/x",
			wantCode: 200, forwarded: true,
			want: map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "GET"},
		},
		{
			name: "route policy overrides origins and methods, keeps the rest", method: "OPTIONS", path: "/open/x",
			hdr:      map[string]string{"Origin": "http://anywhere.test", "Access-Control-Request-Method": "DELETE"},
			wantCode: 200,
			want: map[string]string{
				"Access-Control-Allow-Origin": "http://anywhere.test", "Access-Control-Allow-Methods": "DELETE",
				"Access-Control-Max-Age": "1728000", "Access-Control-Allow-Credentials": "",
			},
		},
		{
			name: "disabled on the route", method: "OPTIONS", path: "/off/x",
			hdr:      map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "POST"},
			wantCode: 200, forwarded: true,
			want: map[string]string{"Access-Control-Allow-Origin": "", "X-Backend": "OPTIONS"},
		},
		{
			name: "forward_not_matching_preflights false: answered, no allow-origin", method: "OPTIONS", path: "/strict/x",
			hdr:      map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
			wantCode: 200,
			want:     map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "GET, POST, PUT", "X-Backend": ""},
		},
		{
			name: "direct response gets the headers too", method: "GET", path: "/direct",
			hdr:      map[string]string{"Origin": "https://app.test"},
			wantCode: 200,
			want:     map[string]string{"Access-Control-Allow-Origin": "https://app.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			req, err := http.NewRequest(tt.method, base+tt.path, nil)
			must(t, err)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := h1Client().Do(req)
			must(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantCode, body)
			}
			if got := hits.Load() > before; got != tt.forwarded {
				t.Errorf("forwarded upstream: %v, want %v", got, tt.forwarded)
			}
			if !tt.forwarded && tt.path != "/direct" && len(body) != 0 {
				t.Errorf("a preflight answer has a body: %q", body)
			}
			for k, want := range tt.want {
				got := resp.Header.Values(k)
				switch {
				case want == "" && len(got) > 0:
					t.Errorf("%s = %q, want it absent", k, got)
				case want != "" && (len(got) != 1 || got[0] != want):
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}

	t.Run("preflight over h2c", func(t *testing.T) {
		before := hits.Load()
		req, err := http.NewRequest("OPTIONS", base+"/svc/Method", nil)
		must(t, err)
		req.Header.Set("Origin", "https://app.test")
		req.Header.Set("Access-Control-Request-Method", "PUT")
		resp, err := h2cClient().Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || len(body) != 0 || hits.Load() != before ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://app.test" || resp.Header.Get("Access-Control-Allow-Methods") != "GET, POST, PUT" {
			t.Fatalf("%s %d %q forwarded=%v headers %v", resp.Proto, resp.StatusCode, body, hits.Load() != before, resp.Header)
		}
	})

	// Counters: origin_valid for every allowed Origin the filter saw on an
	// enabled policy, origin_invalid for the others.
	for stat, want := range map[string]string{"cors.origin_valid": "5", "cors.origin_invalid": "3"} {
		if got := filterStat(t, p.admin, "ingress", stat); got != want {
			t.Errorf("%s = %q, want %s", stat, got, want)
		}
	}
}

// filterStat reads a listener's filter counter from /stats/prometheus
// (outrigger_listener_filter_total{listener, stat}); "" when absent.
func filterStat(t *testing.T, admin, listener, stat string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats/prometheus")
	must(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "outrigger_listener_filter_total{") &&
			strings.Contains(line, `listener="`+listener+`"`) && strings.Contains(line, `stat="`+stat+`"`) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// TestCORSRejected: what the filter does not implement is refused with its
// path, at load.
func TestCORSRejected(t *testing.T) {
	policy := func(fields string) string {
		return `              - name: api
                domains: ["*"]
                typed_per_filter_config:
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
` + fields + `                routes:
                - match: {prefix: "/"}
                  route: {cluster: be}
`
	}
	tests := []struct {
		name, vhosts, want string
	}{
		{"runtime key", policy("                    filter_enabled: {runtime_key: cors.on, default_value: {numerator: 100}}\n"), "runtime_key"},
		{"bad regex", policy("                    allow_origin_string_match: [{safe_regex: {regex: \"(\"}}]\n"), "invalid regex"},
		{"deprecated route-level cors", `              - name: api
                domains: ["*"]
                cors: {allow_methods: GET}
                routes:
                - match: {prefix: "/"}
                  route: {cluster: be}
`, "cors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := bs{Filters: corsFilter, VirtualHosts: tt.vhosts, Clusters: staticCluster("be", "", "127.0.0.1:1")}.String()
			b, err := bootstrap.Load("", y)
			if err == nil {
				_, err = server.New(server.Options{Bootstrap: b, DrainTimeout: time.Second})
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}

// TestCORSWithGRPCWeb: the CORS headers reach gRPC-Web responses whether
// the cors filter is listed before or after grpc_web, for a success
// (trailer frame) and for a trailers-only error.
func TestCORSWithGRPCWeb(t *testing.T) {
	grpcAddr, _ := webBackend(t)
	vh := `              - name: api
                domains: ["*"]
` + corsForPage("https://app.test") + `                routes:
                - match: {prefix: "/grpc.testing.TestService/"}
                  route: {cluster: grpc}
`
	for name, filters := range map[string]string{"cors first": corsFilter + grpcWebFilter, "grpc_web first": grpcWebFilter + corsFilter} {
		t.Run(name, func(t *testing.T) {
			p := startProxy(t, bs{Filters: filters, VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, grpcAddr)}.String())
			url := "http://" + p.addr["ingress"] + "/grpc.testing.TestService/UnaryCall"
			for _, tc := range []struct {
				name   string
				msg    []byte
				status string
			}{
				{"ok", marshal(t, &testpb.SimpleRequest{ResponseSize: 3}), "0"},
				{"error", marshal(t, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: 5, Message: "nope"}}), "5"},
			} {
				req := webRequest(t, url, true, tc.msg)
				req.Header.Set("Origin", "https://app.test")
				r := webCall(t, h1Client(), req)
				if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.test" {
					t.Errorf("%s: Access-Control-Allow-Origin %q", tc.name, got)
				}
				if got := r.header.Get("Access-Control-Expose-Headers"); got != "grpc-status,grpc-message,x-echo" {
					t.Errorf("%s: Access-Control-Expose-Headers %q", tc.name, got)
				}
				status := r.header.Get("Grpc-Status")
				if r.trailers != nil {
					status = r.trailers["grpc-status"]
				}
				if status != tc.status {
					t.Errorf("%s: grpc-status %q, want %s", tc.name, status, tc.status)
				}
			}
		})
	}
}
