package listener

import (
	"io"
	"sync"
	"testing"
)

// gate admits connections until closed is set, recording what it saw.
type gate struct {
	mu     sync.Mutex
	closed bool
	seen   []ConnInfo
}

func (g *gate) Admit(info *ConnInfo) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, *info)
	return !g.closed
}

func (g *gate) set(closed bool) {
	g.mu.Lock()
	g.closed = closed
	g.mu.Unlock()
}

// Network filters run before the TCP handler and the HTTP codec, on
// plaintext and on terminated TLS (with the session state); one that
// refuses closes the connection before a byte is served.
func TestConnFilters(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	g := &gate{}
	h := newEchoTCP("tcp")
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "web", Handler: okHandler("web"), TLS: ca.serverTLS(t, "web.example"), ConnFilters: []ConnFilter{g}},
		{Name: "tcp", TCP: h, Match: ChainMatch{TransportProtocol: "raw_buffer"}, ConnFilters: []ConnFilter{g}},
	}})

	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "hello")
	if got := readN(t, c, 9); got != "tcp:hello" {
		t.Fatalf("admitted TCP: got %q", got)
	}
	client := tlsClient(t, ca, "web.example", "h2")
	if resp := get(t, client, "https://"+l.Addr().String()+"/"); resp.Header.Get("X-Chain") != "web" {
		t.Fatalf("admitted TLS: chain %q", resp.Header.Get("X-Chain"))
	}
	g.mu.Lock()
	if len(g.seen) != 2 || g.seen[0].TLS != nil || g.seen[1].TLS == nil || g.seen[1].TLS.ServerName != "web.example" || g.seen[1].Remote == nil {
		t.Errorf("filter saw %+v", g.seen)
	}
	g.mu.Unlock()

	g.set(true)
	c = dialRaw(t, l)
	_, _ = io.WriteString(c, "hello")
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Errorf("refused TCP connection read %q, %v; want EOF at once", b, err)
	}
	client.CloseIdleConnections()
	if resp, err := client.Get("https://" + l.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("refused TLS connection served %d", resp.StatusCode)
	}
	if n := l.Stats().CxFiltered; n != 2 {
		t.Errorf("CxFiltered = %d, want 2", n)
	}
}
