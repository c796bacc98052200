package forward

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// get sends a request through the proxy and returns the status and body.
func get(t *testing.T, url string, hdr http.Header) (int, string) {
	t.Helper()
	return send(t, "GET", url, hdr, nil)
}

func send(t *testing.T, method, url string, hdr http.Header, body []byte) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// retryOn is a policy for tests: no backoff to speak of.
func retryOn(on router.RetryOn, n uint32) *router.RetryPolicy {
	return &router.RetryPolicy{On: on, NumRetries: n, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}
}

func TestRetry503Then200(t *testing.T) {
	up := newTestUpstream(t, status(t, 503, "first"), status(t, 200, "second"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
	})
	code, body := get(t, url, nil)
	res := result(t, results)
	if code != 200 || body != "second" {
		t.Fatalf("got %d %q, want 200 from the second host", code, body)
	}
	if res.Attempts != 2 || res.Flag != "" || res.Status != 200 || res.UpstreamHost != up.hosts[1].Address {
		t.Errorf("result %+v: want 2 attempts, no flag, host %s", res, up.hosts[1].Address)
	}
	admitted, released := up.accounting()
	if admitted != 1 || !slices.Equal(released, []bool{true}) {
		t.Errorf("retry admission: %d admitted, released %v; want 1 and [true]", admitted, released)
	}
}

// Each retry_on condition, positive and negative: the first host fails in
// one way, the second answers 200.
func TestRetryOnConditions(t *testing.T) {
	grpcStatus := func(code string) string {
		return backend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", code)
			w.WriteHeader(200)
		})
	}
	withHeader := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Retry", "please")
		w.WriteHeader(200)
		io.WriteString(w, "first")
	})
	rateLimited := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Envoy-Ratelimited", "true")
		w.WriteHeader(503)
	})
	yes := true
	tests := []struct {
		name      string
		first     string
		on        router.RetryOn
		codes     []int
		headers   []router.HeaderMatcher
		wantRetry bool
		wantCode  int // without a retry
	}{
		{"5xx on 500", status(t, 500, "first"), router.Retry5xx, nil, nil, true, 0},
		{"5xx on 409", status(t, 409, "first"), router.Retry5xx, nil, nil, false, 409},
		{"gateway-error on 503", status(t, 503, "first"), router.RetryGatewayError, nil, nil, true, 0},
		{"gateway-error on 500", status(t, 500, "first"), router.RetryGatewayError, nil, nil, false, 500},
		{"retriable-4xx on 409", status(t, 409, "first"), router.RetryRetriable4xx, nil, nil, true, 0},
		{"retriable-4xx on 429", status(t, 429, "first"), router.RetryRetriable4xx, nil, nil, false, 429},
		{"retriable-4xx on 503", status(t, 503, "first"), router.RetryRetriable4xx, nil, nil, false, 503},
		{"status codes on 418", status(t, 418, "first"), router.RetryRetriableStatusCodes, []int{418}, nil, true, 0},
		{"status codes on 419", status(t, 419, "first"), router.RetryRetriableStatusCodes, []int{418}, nil, false, 419},
		{"status codes not enabled", status(t, 418, "first"), router.Retry5xx, []int{418}, nil, false, 418},
		{"headers present", withHeader, router.RetryRetriableHeaders, nil,
			[]router.HeaderMatcher{{Name: "x-upstream-retry", Present: &yes}}, true, 0},
		{"headers exact mismatch", withHeader, router.RetryRetriableHeaders, nil,
			[]router.HeaderMatcher{{Name: "x-upstream-retry", String: &router.StringMatcher{Kind: router.StringExact, Value: "never"}}}, false, 200},
		{"headers :status", status(t, 404, "first"), router.RetryRetriableHeaders, nil,
			[]router.HeaderMatcher{{Name: ":status", String: &router.StringMatcher{Kind: router.StringExact, Value: "404"}}}, true, 0},
		{"ratelimited never", rateLimited, router.Retry5xx, nil, nil, false, 503},
		{"grpc unavailable", grpcStatus("14"), router.RetryGRPCUnavailable, nil, nil, true, 0},
		{"grpc unavailable not enabled", grpcStatus("14"), router.RetryGRPCCancelled, nil, nil, false, 200},
		{"grpc cancelled", grpcStatus("1"), router.RetryGRPCCancelled, nil, nil, true, 0},
		{"grpc deadline-exceeded", grpcStatus("4"), router.RetryGRPCDeadlineExceeded, nil, nil, true, 0},
		{"grpc resource-exhausted", grpcStatus("8"), router.RetryGRPCResourceExhausted, nil, nil, true, 0},
		{"grpc internal", grpcStatus("13"), router.RetryGRPCInternal, nil, nil, true, 0},
		{"grpc ok", grpcStatus("0"), router.RetryGRPCInternal | router.RetryGRPCUnavailable, nil, nil, false, 200},
		{"connect-failure", closedPort(t), router.RetryConnectFailure, nil, nil, true, 0},
		{"connect-failure under 5xx", closedPort(t), router.Retry5xx, nil, nil, true, 0},
		{"connect-failure not enabled", closedPort(t), router.RetryRetriable4xx, nil, nil, false, 503},
		{"reset", resetting(t), router.RetryReset, nil, nil, true, 0},
		{"reset under gateway-error", resetting(t), router.RetryGatewayError, nil, nil, true, 0},
		{"reset is no connect failure", resetting(t), router.RetryConnectFailure, nil, nil, false, 502},
		{"reset is no refused stream", resetting(t), router.RetryRefusedStream, nil, nil, false, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newTestUpstream(t, tt.first, status(t, 200, "second"))
			url, results := startProxy(t, func(r *http.Request, p *Params) {
				p.Upstream = up
				p.Retry = retryOn(tt.on, 1)
				p.Retry.RetriableStatusCodes = tt.codes
				p.Retry.RetriableHeaders = tt.headers
			})
			code, body := get(t, url, nil)
			res := result(t, results)
			if tt.wantRetry {
				if code != 200 || body != "second" || res.Attempts != 2 {
					t.Fatalf("got %d %q after %d attempts, want a retry answered by the second host", code, body, res.Attempts)
				}
				return
			}
			if code != tt.wantCode || res.Attempts != 1 || res.Flag == FlagRetryLimitExceeded {
				t.Fatalf("got %d %q after %d attempts (flag %q), want %d and no retry", code, body, res.Attempts, res.Flag, tt.wantCode)
			}
		})
	}
}

// refusingH2 is an h2c server that refuses every stream with RST_STREAM
// REFUSED_STREAM.
func refusingH2(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(br, preface); err != nil {
					return
				}
				fr := http2.NewFramer(c, br)
				fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
					case *http2.PingFrame:
						if !f.IsAck() {
							fr.WritePing(true, f.Data)
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRetryRefusedStream(t *testing.T) {
	for _, tt := range []struct {
		name      string
		on        router.RetryOn
		wantRetry bool
	}{
		{"refused-stream", router.RetryRefusedStream, true},
		{"connect-failure only", router.RetryConnectFailure, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newTestUpstream(t)
			up.add(t, refusingH2(t), transport.HTTP2)
			up.add(t, status(t, 200, "second"), transport.HTTP1)
			url, results := startProxy(t, func(r *http.Request, p *Params) {
				p.Upstream = up
				p.Retry = retryOn(tt.on, 1)
			})
			// A body keeps net/http's HTTP/2 transport from replaying the
			// refused request itself.
			code, body := send(t, "POST", url, nil, []byte("payload"))
			res := result(t, results)
			switch {
			case tt.wantRetry && (code != 200 || body != "second" || res.Attempts != 2):
				t.Fatalf("got %d %q after %d attempts, want the second host", code, body, res.Attempts)
			case !tt.wantRetry && (code != 502 || res.Attempts != 1):
				t.Fatalf("got %d %q after %d attempts, want 502 and no retry", code, body, res.Attempts)
			}
		})
	}
}

func TestRetryLimit(t *testing.T) {
	var hits atomic.Int32
	always := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	})
	up := newTestUpstream(t, always)
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 2)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Attempts != 3 || hits.Load() != 3 {
		t.Fatalf("got %d after %d attempts (%d hits), want the last 503 after 3", code, res.Attempts, hits.Load())
	}
	if res.Flag != FlagRetryLimitExceeded {
		t.Errorf("flag %q, want URX", res.Flag)
	}
	admitted, released := up.accounting()
	if admitted != 2 || !slices.Equal(released, []bool{false, false}) {
		t.Errorf("admitted %d, released %v; want 2 and two failures", admitted, released)
	}
}

// A connect failure with no retry left is answered as such and flagged.
func TestRetryLimitOnFailure(t *testing.T) {
	up := newTestUpstream(t, closedPort(t))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.RetryConnectFailure, 1)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Attempts != 2 || res.Flag != "UF,URX" {
		t.Fatalf("got %d after %d attempts, flag %q; want 503 after 2, UF,URX", code, res.Attempts, res.Flag)
	}
}

func TestRetryAdmissionRefused(t *testing.T) {
	var hits atomic.Int32
	always := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	})
	up := newTestUpstream(t, always)
	up.admits = 1 // the second retry is refused
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 5)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Attempts != 2 || hits.Load() != 2 {
		t.Fatalf("got %d after %d attempts (%d hits), want the 503 after 2", code, res.Attempts, hits.Load())
	}
	if res.Flag != FlagUpstreamOverflow {
		t.Errorf("flag %q, want UO", res.Flag)
	}
	admitted, released := up.accounting()
	if admitted != 1 || len(released) != 1 {
		t.Errorf("admitted %d, released %v: every admission needs one release", admitted, released)
	}
}

func TestRetriableRequestHeaders(t *testing.T) {
	gate := []router.HeaderMatcher{
		{Name: ":method", String: &router.StringMatcher{Kind: router.StringExact, Value: "GET"}},
		{Name: ":method", String: &router.StringMatcher{Kind: router.StringExact, Value: "HEAD"}},
	}
	for _, tt := range []struct {
		method string
		want   int
	}{{"GET", 2}, {"DELETE", 1}} {
		up := newTestUpstream(t, status(t, 503, "first"), status(t, 200, "second"))
		url, results := startProxy(t, func(r *http.Request, p *Params) {
			p.Upstream = up
			p.Retry = retryOn(router.Retry5xx, 1)
			p.Retry.RetriableRequestHeaders = gate
		})
		send(t, tt.method, url, nil, nil)
		if res := result(t, results); res.Attempts != tt.want {
			t.Errorf("%s: %d attempts, want %d", tt.method, res.Attempts, tt.want)
		}
	}
}

// bodyRecorder is a backend that reads the whole body, records its hash,
// and answers with the next status of its script.
type bodyRecorder struct {
	mu     sync.Mutex
	sums   [][32]byte
	script []int
}

func (b *bodyRecorder) serve(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	b.mu.Lock()
	b.sums = append(b.sums, sha256.Sum256(data))
	code := 200
	if len(b.sums) <= len(b.script) {
		code = b.script[len(b.sums)-1]
	}
	b.mu.Unlock()
	w.WriteHeader(code)
	w.Write([]byte(strings.Repeat("x", len(data)%7)))
}

func randomBody(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRetryReplaysBody(t *testing.T) {
	for _, size := range []int{1, 100 << 10, 700 << 10} {
		rec := &bodyRecorder{script: []int{503, 503}}
		up := newTestUpstream(t, backend(t, rec.serve))
		url, results := startProxy(t, func(r *http.Request, p *Params) {
			p.Upstream = up
			p.Retry = retryOn(router.Retry5xx, 2)
		})
		body := randomBody(size)
		code, _ := send(t, "POST", url, nil, body)
		res := result(t, results)
		if code != 200 || res.Attempts != 3 {
			t.Fatalf("%d bytes: got %d after %d attempts, want 200 after 3", size, code, res.Attempts)
		}
		want := sha256.Sum256(body)
		for i, s := range rec.sums {
			if s != want {
				t.Errorf("%d bytes: attempt %d sent a different body", size, i+1)
			}
		}
		if res.BytesReceived != int64(size) {
			t.Errorf("%d bytes: BytesReceived %d", size, res.BytesReceived)
		}
	}
}

// The same over an HTTP/2 downstream, with a body of unknown length.
func TestRetryReplaysBodyH2(t *testing.T) {
	rec := &bodyRecorder{script: []int{503}}
	up := newTestUpstream(t, backend(t, rec.serve))
	url, client, results := startProxyH2(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
	})
	body := randomBody(150 << 10)
	req, _ := http.NewRequest("POST", url, io.MultiReader(bytes.NewReader(body))) // no Content-Length
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	res := result(t, results)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || res.Attempts != 2 {
		t.Fatalf("HTTP/%d %d after %d attempts, want HTTP/2 200 after 2", resp.ProtoMajor, resp.StatusCode, res.Attempts)
	}
	want := sha256.Sum256(body)
	if len(rec.sums) != 2 || rec.sums[0] != want || rec.sums[1] != want {
		t.Fatalf("the backend got %d bodies, want the body twice", len(rec.sums))
	}
}

// An upstream that answers before reading the body, then one that reads
// it: the retry still sends the whole body, read partly from the buffer and
// partly from the client.
func TestRetryReplaysBodyAfterEarlyResponse(t *testing.T) {
	early := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(503)
	})
	rec := &bodyRecorder{}
	up := newTestUpstream(t, early, backend(t, rec.serve))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
	})
	body := randomBody(300 << 10)
	code, _ := send(t, "POST", url, nil, body)
	res := result(t, results)
	if code != 200 || res.Attempts != 2 || len(rec.sums) != 1 || rec.sums[0] != sha256.Sum256(body) {
		t.Fatalf("got %d after %d attempts, %d bodies; want 200 with the whole body at the second host", code, res.Attempts, len(rec.sums))
	}
}

func TestRetryBodyOverLimit(t *testing.T) {
	rec := &bodyRecorder{script: []int{503}}
	up := newTestUpstream(t, backend(t, rec.serve))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 2)
		p.RetryBufferLimit = 64 << 10
	})
	body := randomBody(256 << 10)
	code, _ := send(t, "POST", url, nil, body)
	res := result(t, results)
	if code != 503 || res.Attempts != 1 {
		t.Fatalf("got %d after %d attempts, want the 503 without a retry", code, res.Attempts)
	}
	if len(rec.sums) != 1 || rec.sums[0] != sha256.Sum256(body) {
		t.Fatalf("the backend got %d bodies, want the whole body once", len(rec.sums))
	}
	if res.Flag != "" {
		t.Errorf("flag %q: a body too long to replay is no retry limit", res.Flag)
	}
}

func TestRetryPreviousHosts(t *testing.T) {
	up := newTestUpstream(t, status(t, 503, "a"), status(t, 503, "b"), status(t, 503, "c"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 2)
		p.Retry.PreviousHosts = true
		p.Retry.HostSelectionMaxAttempts = 5
		p.LB = lb.Request{Hash: 42, HasHash: true}
	})
	get(t, url, nil)
	res := result(t, results)
	if res.Attempts != 3 {
		t.Fatalf("%d attempts, want 3", res.Attempts)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	a, b := up.hosts[0].Address, up.hosts[1].Address
	want := [][]string{nil, {a}, {a, b}}
	for i := range want {
		if !slices.Equal(up.picks[i], want[i]) || up.maxAtt[i] != 5 {
			t.Errorf("pick %d saw Tried %v MaxAttempts %d, want %v and 5", i+1, up.picks[i], up.maxAtt[i], want[i])
		}
	}
}

// Without previous_hosts nothing is marked tried, and the route's hash
// reaches Pick without a retry policy too.
func TestPickGetsRouteHash(t *testing.T) {
	var got atomic.Pointer[lb.Request]
	up := newTestUpstream(t, status(t, 200, "a"))
	hashing := &hashRecorder{testUpstream: up, got: &got}
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = hashing
		p.LB = lb.Request{Hash: 7, HasHash: true}
	})
	get(t, url, nil)
	result(t, results)
	if r := got.Load(); r == nil || r.Hash != 7 || !r.HasHash {
		t.Fatalf("Pick got %+v, want the route's hash", r)
	}
}

type hashRecorder struct {
	*testUpstream
	got *atomic.Pointer[lb.Request]
}

func (h *hashRecorder) Pick(r *lb.Request) (*lb.Host, error) {
	if r != nil {
		c := *r
		h.got.Store(&c)
	}
	return h.testUpstream.Pick(r)
}

func TestRetryNoHostOnRetry(t *testing.T) {
	up := newTestUpstream(t, status(t, 503, "a"))
	up.noHostAt = 2
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Flag != FlagNoHealthyUpstream || res.Attempts != 1 {
		t.Fatalf("got %d flag %q after %d attempts; want 503 UH after 1", code, res.Flag, res.Attempts)
	}
	if admitted, released := up.accounting(); admitted != 1 || len(released) != 1 {
		t.Errorf("admitted %d, released %v", admitted, released)
	}
}

// hanging answers only when its request ends (or after 2 s), and reports
// how its request ended.
func hanging(t *testing.T, canceled chan<- string, name string) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		// net/http notices a closed connection only once the body is read.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			canceled <- name
		case <-time.After(2 * time.Second):
			w.WriteHeader(200)
			io.WriteString(w, name)
		}
	})
}

func TestPerTryTimeoutThenRetry(t *testing.T) {
	canceled := make(chan string, 4)
	up := newTestUpstream(t, hanging(t, canceled, "slow"), status(t, 200, "fast"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.RetryReset, 1)
		p.Retry.PerTryTimeout = 100 * time.Millisecond
	})
	code, body := get(t, url, nil)
	res := result(t, results)
	if code != 200 || body != "fast" || res.Attempts != 2 || res.UpstreamHost != up.hosts[1].Address {
		t.Fatalf("got %d %q after %d attempts from %s, want the fast host", code, body, res.Attempts, res.UpstreamHost)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the timed-out attempt was not reset")
	}
}

func TestPerTryTimeoutOutOfRetries(t *testing.T) {
	canceled := make(chan string, 4)
	up := newTestUpstream(t, hanging(t, canceled, "slow"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 0)
		p.Retry.PerTryTimeout = 50 * time.Millisecond
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 504 || res.Flag != "UT,URX" || res.Attempts != 1 {
		t.Fatalf("got %d flag %q after %d attempts, want 504 UT,URX after 1", code, res.Flag, res.Attempts)
	}
}

// A per-try idle timeout before any response resets the attempt, which is
// retried like a reset.
func TestPerTryIdleTimeoutThenRetry(t *testing.T) {
	canceled := make(chan string, 4)
	up := newTestUpstream(t, hanging(t, canceled, "slow"), status(t, 200, "fast"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.RetryReset, 1)
		p.Retry.PerTryIdleTimeout = 100 * time.Millisecond
	})
	code, body := send(t, "POST", url, nil, []byte("some body"))
	res := result(t, results)
	if code != 200 || body != "fast" || res.Attempts != 2 {
		t.Fatalf("got %d %q after %d attempts, want the fast host", code, body, res.Attempts)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle attempt was not reset")
	}
}

// A per-try idle timeout resets an attempt whose response body stalls; the
// headers were relayed, so it is not retried: the client sees an abort.
func TestPerTryIdleTimeoutMidBody(t *testing.T) {
	stall := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	up := newTestUpstream(t, stall, status(t, 200, "second"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx|router.RetryReset, 1)
		p.Retry.PerTryIdleTimeout = 100 * time.Millisecond
	})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := result(t, results)
	if rerr == nil || !res.Abort || res.Attempts != 1 || res.Flag != FlagUpstreamTimeout {
		t.Fatalf("read error %v, result %+v: want an aborted body, 1 attempt, UT", rerr, res)
	}
}

// Never retry once headers were relayed: the backend sends headers and
// part of the body, then drops the connection.
func TestNoRetryAfterHeaders(t *testing.T) {
	cut := backend(t, func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: the proxy flushes each chunk, so the client
		// has the headers before the cut.
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	up := newTestUpstream(t, cut, status(t, 200, "second"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx|router.RetryReset, 3)
	})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := result(t, results)
	if rerr == nil || !res.Abort || res.Attempts != 1 || strings.Contains(string(b), "second") {
		t.Fatalf("read %q err %v, result %+v: want an abort after 1 attempt", b, rerr, res)
	}
}

func TestUpgradeNotRetried(t *testing.T) {
	var hits atomic.Int32
	refuse := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	})
	up := newTestUpstream(t, refuse)
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Upgrade = UpgradeType(r)
		p.Retry = retryOn(router.Retry5xx, 3)
	})
	code, _ := get(t, url, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}})
	res := result(t, results)
	if code != 503 || res.Attempts != 1 || hits.Load() != 1 {
		t.Fatalf("got %d after %d attempts, want the 503 and no retry", code, res.Attempts)
	}
}

// The route timeout bounds the backoff too.
func TestRouteTimeoutBoundsBackoff(t *testing.T) {
	defer func(j func(int64) int64) { jitter = j }(jitter)
	jitter = func(n int64) int64 { return n - 1 } // the longest wait
	up := newTestUpstream(t, status(t, 503, "first"), status(t, 200, "second"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Timeout = 100 * time.Millisecond
		p.Retry = &router.RetryPolicy{On: router.Retry5xx, NumRetries: 1, BackoffBase: time.Minute}
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 504 || res.Flag != FlagUpstreamTimeout || res.Attempts != 1 {
		t.Fatalf("got %d flag %q after %d attempts, want 504 UT during the backoff", code, res.Flag, res.Attempts)
	}
	if admitted, released := up.accounting(); admitted != 1 || !slices.Equal(released, []bool{false}) {
		t.Errorf("admitted %d, released %v: the waiting retry must be released", admitted, released)
	}
}
