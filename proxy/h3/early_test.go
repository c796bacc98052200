package h3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// holdRelay forwards UDP datagrams between one client and the server at
// target, holding what the server sends until hold has passed since the
// client's first datagram: the client cannot finish its handshake before
// then, so every request it sends meanwhile reaches the server in 0-RTT
// and is handled while the server's handshake is still incomplete, for
// sure, whatever the scheduling.
type holdRelay struct {
	pc     net.PacketConn
	target *net.UDPAddr
	hold   time.Duration
	client atomic.Pointer[net.UDPAddr]
	up     *net.UDPConn
	start  atomic.Pointer[time.Time]
	wg     sync.WaitGroup
}

func newHoldRelay(t *testing.T, target string, hold time.Duration) *holdRelay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := net.ResolveUDPAddr("udp", target)
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	r := &holdRelay{pc: pc, target: ta, hold: hold, up: up}
	r.wg.Add(2)
	go r.fromClient()
	go r.fromServer()
	t.Cleanup(func() {
		pc.Close()
		up.Close()
		r.wg.Wait()
	})
	return r
}

func (r *holdRelay) addr() string { return r.pc.LocalAddr().String() }

func (r *holdRelay) fromClient() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, a, err := r.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		r.client.Store(a.(*net.UDPAddr))
		now := time.Now()
		r.start.CompareAndSwap(nil, &now)
		_, _ = r.up.Write(buf[:n])
	}
}

func (r *holdRelay) fromServer() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := r.up.Read(buf)
		if err != nil {
			return
		}
		if s := r.start.Load(); s != nil {
			time.Sleep(time.Until(s.Add(r.hold)))
		}
		if c := r.client.Load(); c != nil {
			_, _ = r.pc.WriteTo(buf[:n], c)
		}
	}
}

// echoMethod answers the request's method and whether the handshake was
// done, so the test sees what reached the handler.
func echoMethod(served *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(b))
	})
}

// earlyClient dials addr with 0-RTT (a session from an earlier connection
// in cache) and returns the connection before its handshake completes.
func earlyClient(t *testing.T, addr string, cache tls.ClientSessionCache, pool *x509.CertPool) (*quic.Conn, *http3.ClientConn) {
	t.Helper()
	return earlyClientSNI(t, addr, "127.0.0.1", cache, pool)
}

// earlyClientSNI is earlyClient with a server name.
func earlyClientSNI(t *testing.T, addr, sni string, cache tls.ClientSessionCache, pool *x509.CertPool) (*quic.Conn, *http3.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tc := &tls.Config{RootCAs: pool, NextProtos: []string{http3.NextProtoH3}, ClientSessionCache: cache, ServerName: sni}
	conn, err := quic.DialAddrEarly(ctx, addr, tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn, (&http3.Transport{}).NewClientConn(conn)
}

// send writes a request on a new stream and reads the response.
func send(t *testing.T, cc *http3.ClientConn, method, url string) (int, string) {
	t.Helper()
	return start(t, cc, method, url)()
}

// start writes a request on a new request stream without waiting for the
// handshake (http3.ClientConn.RoundTrip waits for it except for its
// GET_0RTT/HEAD_0RTT methods); the func it returns reads the response.
func start(t *testing.T, cc *http3.ClientConn, method, url string) func() (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// No body: a POST goes with content-length 0 (RequestStream has no
	// way to declare a body it writes itself).
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	str.Close()
	return func() (int, string) {
		t.Helper()
		defer cancel()
		resp, err := str.ReadResponse()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(str)
		return resp.StatusCode, string(b)
	}
}

func TestEarlyDataTooEarly(t *testing.T) {
	srvTLS, pool := testTLS(t)
	var served atomic.Int64
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: echoMethod(&served), EarlyData: true})
	cache := tls.NewLRUClientSessionCache(4)

	// A first, full handshake leaves a session ticket that allows 0-RTT.
	warm, wcc := earlyClient(t, l.Addr().String(), cache, pool)
	<-warm.HandshakeComplete()
	if code, _ := send(t, wcc, "GET", "https://127.0.0.1/"); code != 200 {
		t.Fatalf("warm-up GET: %d", code)
	}
	warm.CloseWithError(0, "")

	relay := newHoldRelay(t, l.Addr().String(), 400*time.Millisecond)
	conn, cc := earlyClient(t, relay.addr(), cache, pool)
	url := "https://127.0.0.1/"

	// Sent before the handshake completes: the POST and the DELETE are
	// refused, the GET served.
	post := start(t, cc, "POST", url)
	get := start(t, cc, "GET", url)
	del := start(t, cc, "DELETE", url)
	select {
	case <-conn.HandshakeComplete():
		t.Fatal("the handshake completed before the early requests were sent: the relay did not hold it")
	default:
	}
	if code, body := post(); code != http.StatusTooEarly || body != "too early" {
		t.Fatalf("0-RTT POST: %d %q, want 425", code, body)
	}
	if code, body := get(); code != 200 || body != "GET " {
		t.Fatalf("0-RTT GET: %d %q, want 200", code, body)
	}
	if code, _ := del(); code != http.StatusTooEarly {
		t.Fatalf("0-RTT DELETE: %d, want 425", code)
	}
	if !conn.ConnectionState().Used0RTT {
		t.Fatal("the connection did not use 0-RTT")
	}
	// The client retries after the handshake, as RFC 8470 says.
	<-conn.HandshakeComplete()
	if code, body := send(t, cc, "POST", url); code != 200 || body != "POST " {
		t.Fatalf("POST after the handshake: %d %q, want 200", code, body)
	}
	if st := l.Stats(); st.EarlyDataRejected != 2 || st.EarlyDataServed != 1 {
		t.Fatalf("stats %+v, want 2 rejected and 1 served early", st)
	}
	if served.Load() != 3 { // warm-up GET, early GET, POST retry
		t.Fatalf("handler served %d requests, want 3", served.Load())
	}
}

func TestEarlyDataOffRefusesZeroRTT(t *testing.T) {
	srvTLS, pool := testTLS(t)
	var served atomic.Int64
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: echoMethod(&served)})
	cache := tls.NewLRUClientSessionCache(4)
	warm, wcc := earlyClient(t, l.Addr().String(), cache, pool)
	<-warm.HandshakeComplete()
	send(t, wcc, "GET", "https://127.0.0.1/")
	warm.CloseWithError(0, "")

	// Without EarlyData the server's tickets do not allow 0-RTT: the
	// client waits for the handshake and the POST is served.
	conn, cc := earlyClient(t, l.Addr().String(), cache, pool)
	if code, body := send(t, cc, "POST", "https://127.0.0.1/"); code != 200 || body != "POST " {
		t.Fatalf("POST: %d %q", code, body)
	}
	if conn.ConnectionState().Used0RTT {
		t.Fatal("0-RTT was used with a listener without EarlyData")
	}
	if st := l.Stats(); st.EarlyDataRejected != 0 || st.EarlyDataServed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSafeEarly(t *testing.T) {
	for _, tc := range []struct {
		method string
		cl     int64
		want   bool
	}{
		{"GET", -1, true}, {"GET", 0, true}, {"HEAD", -1, true}, {"OPTIONS", -1, true}, {"TRACE", -1, true},
		{"GET", 5, true}, {"POST", 0, false}, {"PUT", -1, false}, {"DELETE", -1, false}, {"PATCH", 3, false}, {"CONNECT", -1, false},
	} {
		r := &http.Request{Method: tc.method, ContentLength: tc.cl}
		if got := h3.SafeEarly(r); got != tc.want {
			t.Errorf("%s with length %d: %v, want %v", tc.method, tc.cl, got, tc.want)
		}
	}
}
