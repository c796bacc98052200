// Package floor is a measuring instrument, not a proxy: the least an
// HTTP/1.1 keep-alive proxy written in Go can do per request, so the bench
// can show how close outrigger is to what its language and runtime allow
// on the machine at hand.
//
// It forwards bodiless requests (GET, HEAD without a body; the small-h1
// scenario and wrk) over pooled keep-alive upstream connections and
// relays responses framed by Content-Length. It does nothing a proxy must
// do beyond that: no routing, no header rewriting (not even hop-by-hop
// headers), no timeouts, no limits, no statistics. It is built the way
// outrigger's hot path is, one goroutine per connection, reads and writes
// as raw system calls (coalesce.Socket, as outrigger's connections), a yield before each read that
// would usually find nothing yet, one write per response, so the
// difference between the two is the cost of being a real proxy. Anything
// it does not handle ends the connection (a request with a body gets a 501
// first).
package floor

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"

	"github.com/outrigger-mesh/outrigger/internal/coalesce"
)

// Proxy forwards to one upstream address.
type Proxy struct {
	upstream string

	mu   sync.Mutex
	idle []*upConn
}

// New returns a Proxy to upstream (host:port).
func New(upstream string) *Proxy { return &Proxy{upstream: upstream} }

type upConn struct {
	c  io.ReadWriteCloser
	br *bufio.Reader
}

// Serve accepts connections on ln until it fails (ln closed).
func (p *Proxy) Serve(ln net.Listener) error { return serveEach(ln, p.serve) }

// serveEach serves every connection ln accepts on a goroutine of its own
// until Accept fails (ln closed).
func serveEach(ln net.Listener, serve func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c)
	}
}

// Close closes the idle upstream connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.idle {
		u.c.Close()
	}
	p.idle = nil
}

// raw reads and writes c with raw system calls where it can, as
// outrigger's listener and upstream connections do.
func raw(c net.Conn) io.ReadWriteCloser { return coalesce.NewSocket(c, c) }

func (p *Proxy) get() (*upConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		u := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return u, nil
	}
	p.mu.Unlock()
	c, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return nil, err
	}
	rc := raw(c)
	return &upConn{c: rc, br: bufio.NewReaderSize(rc, 4096)}, nil
}

func (p *Proxy) put(u *upConn) {
	p.mu.Lock()
	p.idle = append(p.idle, u)
	p.mu.Unlock()
}

var (
	errFraming = errors.New("floor: not a bodiless request or a Content-Length response")
	headEnd    = []byte("\r\n\r\n")
)

// readHead returns the head through its blank line, as a view into br's
// buffer (valid until the next read or Discard). Before a read that would
// wait it yields, as outrigger does: the bytes usually arrive meanwhile.
func readHead(br *bufio.Reader) ([]byte, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, headEnd); i >= 0 {
			return b[:i+4], nil
		}
		if br.Buffered() == br.Size() {
			return nil, bufio.ErrBufferFull
		}
		if br.Buffered() == 0 {
			runtime.Gosched()
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// field returns the value of the header name (given in lower case with
// its colon) in head, and whether it is there.
func field(head []byte, name string) ([]byte, bool) {
	for line := head; len(line) > 0; {
		i := bytes.Index(line, []byte("\r\n"))
		if i < 0 {
			break
		}
		if l := line[:i]; len(l) > len(name) && bytes.EqualFold(l[:len(name)], []byte(name)) {
			return bytes.TrimSpace(l[len(name):]), true
		}
		line = line[i+2:]
	}
	return nil, false
}

func (p *Proxy) serve(c net.Conn) {
	defer c.Close()
	rc := raw(c)
	br := bufio.NewReaderSize(rc, 4096)
	out := make([]byte, 0, 4096)
	for {
		h, err := readHead(br)
		if err != nil {
			return
		}
		_, cl := field(h, "content-length:")
		_, te := field(h, "transfer-encoding:")
		if cl || te {
			_, _ = io.WriteString(rc, "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		u, err := p.get()
		if err != nil {
			_, _ = io.WriteString(rc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		out, err = p.exchange(u, h, out[:0], bytes.HasPrefix(h, []byte("HEAD ")))
		if err != nil {
			u.c.Close()
			return
		}
		p.put(u)
		if _, err := br.Discard(len(h)); err != nil {
			return
		}
		if _, err := rc.Write(out); err != nil {
			return
		}
	}
}

// exchange sends the request head h on u and appends the response to out
// (its head only when head: the answer to a HEAD has no body).
func (p *Proxy) exchange(u *upConn, h, out []byte, head bool) ([]byte, error) {
	if _, err := u.c.Write(h); err != nil {
		return out, err
	}
	rh, err := readHead(u.br)
	if err != nil {
		return out, err
	}
	v, ok := field(rh, "content-length:")
	n, err := strconv.Atoi(string(v))
	if !ok || err != nil || n < 0 {
		return out, errFraming
	}
	out = append(out, rh...)
	_, _ = u.br.Discard(len(rh))
	if head {
		n = 0
	}
	for n > 0 {
		b, err := u.br.Peek(min(n, u.br.Size()))
		if err != nil && len(b) == 0 {
			return out, err
		}
		out = append(out, b...)
		_, _ = u.br.Discard(len(b))
		n -= len(b)
	}
	return out, nil
}
