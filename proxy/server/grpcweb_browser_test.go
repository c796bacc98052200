package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// The browser test: headless Chromium loads a page from one loopback
// origin (an httptest server) that calls the grpc-go TestService through
// the proxy, on another origin, with the official gRPC-Web JS library —
// the same grpc-web 2.1.1 package the node test uses (its index.js needs
// no bundling: it is a self-contained CommonJS file that a page loads
// after defining `exports`). Every call is cross-origin with non-safelisted
// headers, so Chromium sends a CORS preflight first, which the proxy's
// envoy.filters.http.cors answers; a second proxy without the CORS filter
// shows the browser refusing the same call.

// browserPage runs the job it fetches from /job and posts every event to
// /result when the calls are over (the events are those of
// testdata/grpcweb/client.js).
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>grpc-web browser test</title></head>
<body><pre id="out">running</pre>
<script>var exports = {};</script>
<script src="/grpc-web.js"></script>
<script>
'use strict';
const grpcWeb = exports;
class Bytes { constructor(b) { this.b = b; } }
const serialize = (m) => m.b;
const deserialize = (b) => new Bytes(b);
const fromB64 = (s) => Uint8Array.from(atob(s || ''), (c) => c.charCodeAt(0));
function toB64(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
  return btoa(s);
}
const events = [];
const emit = (e) => events.push(e);

function run(job, i, call) {
  return new Promise((resolve) => {
    const client = new grpcWeb.GrpcWebClientBase({ format: call.format });
    const type = call.type === 'unary' ? grpcWeb.MethodType.UNARY : grpcWeb.MethodType.SERVER_STREAMING;
    const desc = new grpcWeb.MethodDescriptor(call.method, type, Bytes, Bytes, serialize, deserialize);
    const req = new Bytes(fromB64(call.request));
    const url = call.url + call.method;
    let ended = false;
    const end = () => { if (!ended) { ended = true; emit({ call: i, event: 'end' }); resolve(); } };
    const onError = (err) => emit({ call: i, event: 'error', code: err.code, message: String(err.message), metadata: err.metadata || {} });
    let stream;
    if (call.type === 'unary') {
      stream = client.rpcCall(url, req, call.metadata || {}, desc, (err, resp) => {
        if (err) { onError(err); } else { emit({ call: i, event: 'data', data: toB64(resp.b) }); }
        setTimeout(end, 0);
      });
    } else {
      stream = client.serverStreaming(url, req, call.metadata || {}, desc);
      stream.on('data', (resp) => emit({ call: i, event: 'data', data: toB64(resp.b) }));
      stream.on('error', (err) => { onError(err); end(); });
      stream.on('end', end);
    }
    stream.on('metadata', (md) => emit({ call: i, event: 'metadata', metadata: md }));
    stream.on('status', (st) => emit({ call: i, event: 'status', code: st.code, details: st.details, metadata: st.metadata || {} }));
  });
}

(async () => {
  try {
    const job = await (await fetch('/job')).json();
    for (let i = 0; i < job.calls.length; i++) {
      await run(job, i, job.calls[i]);
    }
  } catch (e) {
    emit({ call: -1, event: 'error', message: 'page: ' + e });
  }
  await fetch('/result', { method: 'POST', body: JSON.stringify(events) });
  document.getElementById('out').textContent = 'done';
})();
</script></body></html>
`

// browserCall is one call of the page's job.
type browserCall struct {
	URL      string            `json:"url"`
	Format   string            `json:"format"`
	Method   string            `json:"method"`
	Type     string            `json:"type"`
	Request  []byte            `json:"request"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// chromiumPath finds a Chromium binary or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (make test-deps installs Debian's chromium): the gRPC-Web browser test is skipped")
	return ""
}

// pageServer serves the page, the grpc-web library, the job, and takes the
// result; its URL is the page's origin.
// The job is set once the proxies, whose addresses it names, run.
func pageServer(t *testing.T, modules string) (*httptest.Server, *atomic.Pointer[[]byte], <-chan []jsEvent) {
	t.Helper()
	lib, err := os.ReadFile(filepath.Join(modules, "grpc-web", "index.js"))
	must(t, err)
	var job atomic.Pointer[[]byte]
	results := make(chan []jsEvent, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, browserPage)
		case "/grpc-web.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(lib)
		case "/job":
			w.Header().Set("Content-Type", "application/json")
			if j := job.Load(); j != nil {
				w.Write(*j)
			}
		case "/result":
			var ev []jsEvent
			if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
				t.Errorf("page result: %v", err)
			}
			select {
			case results <- ev:
			default:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &job, results
}

// runChromium opens url in headless Chromium and keeps it running (a
// DevTools port keeps a headless browser open) until the test ends; the
// whole process group is killed then.
func runChromium(t *testing.T, bin, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+t.TempDir(), url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
}

// corsForPage is a virtual host CorsPolicy for a gRPC-Web page at origin:
// the headers the grpc-web library sends, and the response headers it must
// read from a cross-origin response (grpc-status and grpc-message of
// trailers-only replies, custom metadata).
func corsForPage(origin string) string {
	return fmt.Sprintf(`                typed_per_filter_config:
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                    allow_origin_string_match: [{exact: %q}]
                    allow_methods: "GET, PUT, DELETE, POST, OPTIONS"
                    allow_headers: "keep-alive,user-agent,cache-control,content-type,content-transfer-encoding,x-accept-content-transfer-encoding,x-accept-response-streaming,x-user-agent,x-grpc-web,grpc-timeout,x-echo"
                    expose_headers: "grpc-status,grpc-message,x-echo"
                    max_age: "1728000"
`, origin)
}

func TestGRPCWebBrowser(t *testing.T) {
	bin := chromiumPath(t)
	modules := jsClientDir(t)
	grpcAddr, _ := webBackend(t)

	const (
		unary  = "/grpc.testing.TestService/UnaryCall"
		stream = "/grpc.testing.TestService/StreamingOutputCall"
	)
	// The page's origin must be known for the policy: reserve the page
	// server first, then start the proxies.
	page, pageJob, results := pageServer(t, modules)
	origin := page.URL
	vh := `              - name: api
                domains: ["*"]
` + corsForPage(origin) + `                routes:
                - match: {prefix: "/grpc.testing.TestService/"}
                  route: {cluster: grpc, timeout: 0s}
`
	filters := grpcWebFilter + corsFilter
	withCORS := startProxy(t, bs{Admin: true, Filters: filters, VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, grpcAddr)}.String())
	withoutCORS := startProxy(t, bs{Filters: grpcWebFilter, VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, grpcAddr)}.String())
	api := "http://" + withCORS.addr["ingress"]
	if strings.HasPrefix(api, origin) {
		t.Fatalf("the page (%s) and the proxy (%s) share an origin", origin, api)
	}
	calls := []browserCall{
		{URL: api, Format: "text", Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{ResponseSize: 1000}), Metadata: map[string]string{"x-echo": "hi"}},
		{URL: api, Format: "text", Method: stream, Type: "server_streaming", Request: marshal(t, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 20000}, {Size: 30}},
		})},
		{URL: api, Format: "binary", Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{ResponseSize: 7})},
		{URL: api, Format: "text", Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing"}})},
		{URL: "http://" + withoutCORS.addr["ingress"], Format: "text", Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{ResponseSize: 1})},
	}
	job, err := json.Marshal(map[string]any{"calls": calls})
	must(t, err)
	pageJob.Store(&job)

	runChromium(t, bin, origin+"/")
	var events []jsEvent
	select {
	case events = <-results:
	case <-time.After(60 * time.Second):
		t.Fatal("the page posted no result within 60 s")
	}
	ch := make(chan jsEvent, len(events))
	for _, e := range events {
		if e.Call < 0 {
			t.Fatalf("the page failed: %s", e.Message)
		}
		ch <- e
	}
	close(ch)
	res := collectJS(t, ch, len(calls))

	t.Run("unary text", func(t *testing.T) {
		r := res[0]
		if r.err != nil || len(r.messages) != 1 {
			t.Fatalf("err %+v, %d messages", r.err, len(r.messages))
		}
		var m testpb.SimpleResponse
		must(t, proto.Unmarshal(r.messages[0], &m))
		if len(m.GetPayload().GetBody()) != 1000 {
			t.Errorf("payload %d bytes", len(m.GetPayload().GetBody()))
		}
		if r.header["x-echo"] != "hi" {
			t.Errorf("response metadata %v: x-echo not exposed", r.header)
		}
		if r.status == nil || r.status.Code != 0 || r.status.Metadata["x-trailer"] != "unary" {
			t.Errorf("status %+v", r.status)
		}
	})
	t.Run("server stream text", func(t *testing.T) {
		r := res[1]
		if r.err != nil || len(r.messages) != 3 {
			t.Fatalf("err %+v, %d messages", r.err, len(r.messages))
		}
		for i, want := range []int{10, 20000, 30} {
			var m testpb.StreamingOutputCallResponse
			must(t, proto.Unmarshal(r.messages[i], &m))
			if len(m.GetPayload().GetBody()) != want {
				t.Errorf("message %d: %d bytes, want %d", i, len(m.GetPayload().GetBody()), want)
			}
		}
	})
	t.Run("unary binary", func(t *testing.T) {
		r := res[2]
		if r.err != nil || len(r.messages) != 1 {
			t.Fatalf("err %+v, %d messages", r.err, len(r.messages))
		}
	})
	t.Run("error status read from exposed headers", func(t *testing.T) {
		r := res[3]
		if r.err == nil || r.err.Code != int(codes.NotFound) || r.err.Message != "no such thing" {
			t.Fatalf("err %+v, want NOT_FOUND \"no such thing\" (grpc-status and grpc-message must be exposed)", r.err)
		}
	})
	t.Run("without the CORS filter the browser refuses", func(t *testing.T) {
		r := res[4]
		if r.err == nil || len(r.messages) != 0 {
			t.Fatalf("a call to a proxy without CORS succeeded: %+v, %d messages", r.err, len(r.messages))
		}
		t.Logf("the browser's error without CORS: code %d %q", r.err.Code, r.err.Message)
	})
	// Four calls with an allowed Origin, each a preflight and the call
	// itself (Chromium caches preflights per URL for max_age, so the
	// count is at least one preflight plus the four calls).
	if v, _ := strconv.Atoi(filterStat(t, withCORS.admin, "ingress", "cors.origin_valid")); v < 5 {
		t.Errorf("cors.origin_valid = %d, want at least 5 (preflight + calls)", v)
	}
}
