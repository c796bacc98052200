package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenCase is one testdata/<name>.json mesh translated for proxy (or
// Proxyless when proxy is empty) and compared with testdata/<name>.golden,
// which holds the resources or the error.
type goldenCase struct {
	name  string
	proxy string
}

var goldenCases = []goldenCase{
	{"http_upstream", "web-sidecar-proxy"},
	// http_upstream with proxy-defaults tracing: every connection manager
	// reports to the OTLP collector's cluster, 10 % sampled.
	{"tracing", "web-sidecar-proxy"},
	{"grpc_upstream", "web-sidecar-proxy"},
	{"tcp", "db-client-sidecar-proxy"},
	{"router", "web-sidecar-proxy"},
	{"splitter_canary", "web-sidecar-proxy"},
	{"blue_green", "web-sidecar-proxy"},
	{"resolver", "web-sidecar-proxy"},
	{"redirect", "web-sidecar-proxy"},
	{"cycle", "web-sidecar-proxy"},
	{"redirect_cycle", "web-sidecar-proxy"},
	{"router_tcp", "web-sidecar-proxy"},
	{"unknown_proxy", "api-sidecar-proxy"},
	{"proxyless", ""},
	// public_listener on the registration's bind_address and the
	// proxy-defaults' bind_port.
	{"bind_address", "web-sidecar-proxy"},
	// web's service-defaults UpstreamConfig: Defaults on api's two split
	// targets (its connect timeout over the resolver's), an override for
	// cache, a peer's override that does not apply, and db's own config in
	// the registration winning over both.
	{"upstream_config", "web-sidecar-proxy"},
	// Intentions on web and on "*", default deny: admin allowed, frontend
	// by L7 permissions (a deny before two allows), legacy denied although
	// "*" allows it, everyone else by web's "*"; a peer's source skipped.
	{"intentions", "web-sidecar-proxy"},
	// A tcp destination with default allow: the L7 intention is a deny,
	// the exact allow is subtracted from the "*" deny.
	{"intentions_tcp", "db-client-sidecar-proxy"},
	// Transparent mode: the outbound listener on 15001 with original_dst,
	// a chain per upstream service and port matched by its instances'
	// addresses (api over HTTP, listed twice: one chain; postgres over
	// TCP on two ports, no bind port, a DNS-named instance left out), and
	// the passthrough default chain to the ORIGINAL_DST cluster.
	{"transparent", "web-sidecar-proxy"},
}

func loadMesh(t *testing.T, name string) *model.Mesh {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	m := &model.Mesh{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		t.Fatalf("testdata/%s.json: %v", name, err)
	}
	return m
}

func (c goldenCase) run(m *model.Mesh) (*Resources, error) {
	if c.proxy == "" {
		return Proxyless(m)
	}
	return Proxy(m, c.proxy)
}

// render is the golden form: one JSON document, keys sorted, two-space
// indent. protojson's own spacing is randomised on purpose, so its output
// is re-encoded.
func render(t *testing.T, r *Resources, err error) []byte {
	t.Helper()
	if err != nil {
		return []byte("error: " + err.Error() + "\n")
	}
	doc := map[string][]any{}
	add := func(kind string, m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		doc[kind] = append(doc[kind], v)
	}
	for _, l := range r.Listeners {
		add("listeners", l)
	}
	for _, x := range r.Routes {
		add("routes", x)
	}
	for _, c := range r.Clusters {
		add("clusters", c)
	}
	for _, e := range r.Endpoints {
		add("endpoints", e)
	}
	for _, x := range r.Secrets {
		add("secrets", x)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.run(loadMesh(t, c.name))
			got := render(t, r, err)
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatalf("%v (run with -update to create it)", rerr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update after checking the diff):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first differing lines, enough to find the change.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out = append(out, "line "+itoa(i+1)+":\n  want: "+wl+"\n  got:  "+gl)
			if len(out) == 5 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestUnknownProxyWrapsSentinel(t *testing.T) {
	_, err := Proxy(loadMesh(t, "unknown_proxy"), "nope")
	if !errors.Is(err, ErrUnknownProxy) {
		t.Fatalf("err = %v, want it to wrap ErrUnknownProxy", err)
	}
	if !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("err = %v, want it to name the proxy", err)
	}
}
