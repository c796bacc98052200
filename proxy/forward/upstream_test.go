package forward

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// testUpstream is a small Upstream over real loopback backends and the real
// proxy/transport: Pick goes round the hosts skipping Tried ones (up to
// MaxAttempts re-picks, like proxy/lb), AdmitRetry lets a scripted number
// of retries through. The integration tests through proxy/cluster live in
// proxy/server.
type testUpstream struct {
	hosts []*lb.Host
	trs   map[*lb.Host]*transport.Transport

	mu       sync.Mutex
	next     int
	picks    [][]string // the Tried addresses each Pick saw
	maxAtt   []int
	admits   int // retries still admitted; < 0: any number
	admitted int
	released []bool
	noHostAt int // Pick number (1-based) that fails; 0: none
	errs     []error
}

func newTestUpstream(t *testing.T, addrs ...string) *testUpstream {
	t.Helper()
	u := &testUpstream{trs: map[*lb.Host]*transport.Transport{}, admits: -1}
	for _, a := range addrs {
		u.add(t, a, transport.HTTP1)
	}
	return u
}

// add appends a host reached with protocol proto.
func (u *testUpstream) add(t *testing.T, addr string, proto transport.Protocol) *lb.Host {
	t.Helper()
	tr, err := transport.New(transport.Options{Protocol: proto, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	h := &lb.Host{Address: addr}
	u.hosts = append(u.hosts, h)
	u.trs[h] = tr
	return h
}

func (u *testUpstream) Pick(r *lb.Request) (*lb.Host, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var tried []string
	max := 0
	if r != nil {
		for _, h := range r.Tried {
			tried = append(tried, h.Address)
		}
		max = r.MaxAttempts
	}
	u.picks = append(u.picks, tried)
	u.maxAtt = append(u.maxAtt, max)
	if len(u.picks) == u.noHostAt {
		return nil, errNoHost
	}
	var h *lb.Host
	for i := 0; i <= max; i++ {
		h = u.hosts[u.next%len(u.hosts)]
		u.next++
		if !r.Rejects(h) {
			break
		}
	}
	return h, nil
}

var errNoHost = errors.New("no healthy upstream")

func (u *testUpstream) RoundTrip(req *http.Request, h *lb.Host) (*http.Response, error) {
	tr := u.trs[h]
	req.URL.Scheme = tr.Scheme()
	req.URL.Host = h.Address
	resp, err := tr.RoundTrip(req)
	if err != nil {
		u.mu.Lock()
		u.errs = append(u.errs, err)
		u.mu.Unlock()
	}
	return resp, err
}

// roundTripErrors returns the errors round trips returned so far.
func (u *testUpstream) roundTripErrors() []error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]error(nil), u.errs...)
}

func (u *testUpstream) AdmitRetry() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.admits == 0 {
		return false
	}
	if u.admits > 0 {
		u.admits--
	}
	u.admitted++
	return true
}

func (u *testUpstream) ReleaseRetry(success bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.released = append(u.released, success)
}

func (u *testUpstream) accounting() (admitted int, released []bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.admitted, append([]bool(nil), u.released...)
}

// testClassify is proxy/server's classifier.
func testClassify(err error) (Reason, bool) {
	switch {
	case errors.Is(err, errNoHost):
		return ReasonNoHealthyUpstream, true
	case errors.Is(err, transport.ErrConnect):
		return ReasonConnectFailure, true
	case errors.Is(err, transport.ErrTimeout):
		return ReasonUpstreamTimeout, true
	case errors.Is(err, transport.ErrReset):
		return ReasonUpstreamReset, true
	}
	return 0, false
}

// startProxy serves Forward on loopback with the Params setup builds, and
// reports each request's Result.
func startProxy(t *testing.T, setup func(r *http.Request, p *Params)) (string, <-chan Result) {
	t.Helper()
	results := make(chan Result, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := Params{Classify: testClassify, Timeout: 10 * time.Second}
		setup(r, &p)
		PrepareRequestHeaders(r.Header, p.Upgrade)
		res := Forward(w, r, &p)
		results <- res
		if res.Abort {
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, results
}

// startProxyH2 is startProxy over TLS with HTTP/2, and its client.
func startProxyH2(t *testing.T, setup func(r *http.Request, p *Params)) (string, *http.Client, <-chan Result) {
	t.Helper()
	results := make(chan Result, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := Params{Classify: testClassify, Timeout: 10 * time.Second}
		setup(r, &p)
		PrepareRequestHeaders(r.Header, p.Upgrade)
		res := Forward(w, r, &p)
		results <- res
		if res.Abort {
			panic(http.ErrAbortHandler)
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client(), results
}

// result waits for the proxy's Result of a request.
func result(t *testing.T, results <-chan Result) Result {
	t.Helper()
	select {
	case res := <-results:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("no result from the proxy")
		return Result{}
	}
}

// backend starts a loopback HTTP/1.1 backend.
func backend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	// A loopback address no test server binds (they use 127.0.0.1): a
	// port freed here cannot be handed to the next backend a test starts.
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// resetting is a backend that closes every connection once it has read the
// request headers: a reset before any response.
func resetting(t *testing.T) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
}

// status is a backend answering with code and naming itself in the body.
func status(t *testing.T, code int, name string) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		w.Write([]byte(name))
	})
}
