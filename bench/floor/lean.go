package floor

// Lean is the second instrument: the floor plus the per-request work
// outrigger does for the bench's configuration, done on the bytes of the
// heads instead of on http.Request and header maps. It validates the
// request line and every field, matches routes (prefixes, first wins),
// removes hop-by-hop fields both ways, adds X-Forwarded-Proto and a
// generated X-Request-Id (keeping the client's), replaces Server, picks an
// endpoint round robin, counts requests in flight against a limit (a
// circuit breaker's threshold), bounds each exchange with a request timeout
// and each idle client with an idle timeout (a sweeper, no per-request
// timer), and keeps statistics (counters and a latency histogram).
//
// It measures what that work costs when it is done the cheap way, so the
// bench can show how much of outrigger's cost is the work and how much its
// representation. Like the floor it is not a proxy: it relays only
// bodiless requests and responses framed by Content-Length, and refuses or
// drops anything else.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

// LeanStats are Lean's statistics.
type LeanStats struct {
	Requests, Upstream, NoRoute, Overflow, Class2xx, Class5xx, BytesOut atomic.Uint64
	// LatencyUS[i] counts requests that took [2^(i-1), 2^i) µs.
	LatencyUS [40]atomic.Uint64
}

// Lean forwards to its upstreams by route.
type Lean struct {
	Stats LeanStats

	prefixes  []string
	upstreams []string
	rr        atomic.Uint32
	active    atomic.Int64
	maxActive int64
	timeout   time.Duration // one exchange with the upstream
	idle      time.Duration // a client connection between requests

	mu    sync.Mutex
	pool  map[string][]*leanUp
	ups   map[*leanUp]struct{}
	downs map[*leanDown]struct{}
	stop  chan struct{}
	once  sync.Once
}

type leanUp struct {
	addr  string
	nc    net.Conn
	c     io.ReadWriteCloser
	br    *bufio.Reader
	start atomic.Int64 // unix ns the exchange in flight began; 0 none
}

type leanDown struct {
	nc   net.Conn
	last atomic.Int64 // unix ns the last response went; 0 busy
}

// NewLean returns a Lean routing the paths under prefixes (first match
// wins; none: 404) round robin to upstreams (host:port).
func NewLean(prefixes, upstreams []string) *Lean {
	l := &Lean{
		prefixes: prefixes, upstreams: upstreams, maxActive: 1024,
		timeout: 15 * time.Second, idle: time.Hour, // Envoy's defaults
		pool: map[string][]*leanUp{}, ups: map[*leanUp]struct{}{}, downs: map[*leanDown]struct{}{},
		stop: make(chan struct{}),
	}
	go l.sweep(50 * time.Millisecond)
	return l
}

// Close stops the sweeper and closes the pooled upstream connections.
func (l *Lean) Close() {
	l.once.Do(func() { close(l.stop) })
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.pool {
		for _, u := range s {
			u.c.Close()
		}
	}
	l.pool = map[string][]*leanUp{}
}

// sweep enforces the timeouts every tick: an exchange or an idle client
// past its limit has its read cut short.
func (l *Lean) sweep(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	past := time.Unix(1, 0)
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			n := now.UnixNano()
			l.mu.Lock()
			for u := range l.ups {
				if s := u.start.Load(); s != 0 && n-s > int64(l.timeout) {
					_ = u.nc.SetReadDeadline(past)
				}
			}
			for d := range l.downs {
				if s := d.last.Load(); s != 0 && n-s > int64(l.idle) {
					_ = d.nc.SetReadDeadline(past)
				}
			}
			l.mu.Unlock()
		}
	}
}

// Serve accepts connections on ln until it fails (ln closed).
func (l *Lean) Serve(ln net.Listener) error { return serveEach(ln, l.serve) }

func (l *Lean) get(addr string) (*leanUp, error) {
	l.mu.Lock()
	if s := l.pool[addr]; len(s) > 0 {
		u := s[len(s)-1]
		l.pool[addr] = s[:len(s)-1]
		l.mu.Unlock()
		return u, nil
	}
	l.mu.Unlock()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	c := raw(nc)
	u := &leanUp{addr: addr, nc: nc, c: c, br: bufio.NewReaderSize(c, 4096)}
	l.mu.Lock()
	l.ups[u] = struct{}{}
	l.mu.Unlock()
	return u, nil
}

func (l *Lean) put(u *leanUp, reuse bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if reuse {
		l.pool[u.addr] = append(l.pool[u.addr], u)
		return
	}
	delete(l.ups, u)
	u.c.Close()
}

var errBad = errors.New("lean: malformed or unsupported message")

type span struct{ a, b int }

// fields indexes a head's field lines: views into the head.
type fields struct {
	kv    [32][2]span // name, value
	n     int
	hop   uint32 // bit i: field i is hop-by-hop
	close bool   // Connection: close
	host  int    // index of Host; -1
	reqID int    // index of X-Request-Id; -1
	body  bool   // Content-Length or Transfer-Encoding
}

// eqFold reports whether b is lower (given in lower case), ASCII case
// insensitively.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isHopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return eqFold(name, "te")
	case 7:
		return eqFold(name, "trailer") || eqFold(name, "upgrade")
	case 10:
		return eqFold(name, "connection") || eqFold(name, "keep-alive")
	case 16:
		return eqFold(name, "proxy-connection")
	case 17:
		return eqFold(name, "transfer-encoding")
	case 19:
		return eqFold(name, "proxy-authenticate") || eqFold(name, "proxy-authorization")
	}
	return false
}

// parseFields validates and indexes the field lines of h from off to its
// blank line.
func parseFields(h []byte, off int, f *fields) error {
	*f = fields{host: -1, reqID: -1}
	for {
		i := bytes.IndexByte(h[off:], '\n')
		if i < 0 {
			return errBad
		}
		next := off + i + 1
		end := off + i
		if end > off && h[end-1] == '\r' {
			end--
		}
		if end == off {
			return nil
		}
		line := h[off:end]
		c := bytes.IndexByte(line, ':')
		if c <= 0 || f.n == len(f.kv) {
			return errBad
		}
		name := line[:c]
		for _, b := range name {
			if !httpwire.IsTokenByte(b) {
				return errBad
			}
		}
		vs, ve := c+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		value := line[vs:ve]
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7f {
				return errBad
			}
		}
		f.kv[f.n] = [2]span{{off, off + c}, {off + vs, off + ve}}
		switch {
		case isHopByHop(name):
			f.hop |= 1 << f.n
			if len(name) == 10 && eqFold(name, "connection") && hasToken(value, "close") {
				f.close = true
			}
			f.body = f.body || len(name) == 17 // Transfer-Encoding
		case len(name) == 4 && eqFold(name, "host"):
			if f.host >= 0 {
				return errBad
			}
			f.host = f.n
		case len(name) == 14 && eqFold(name, "content-length"):
			f.body = true
		case len(name) == 12 && eqFold(name, "x-request-id"):
			f.reqID = f.n
		}
		f.n++
		off = next
	}
}

// hasToken reports whether the comma-separated list v holds token (lower
// case), case insensitively.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		if eqFold(bytes.TrimSpace(v[:i]), token) {
			return true
		}
		v = v[min(i+1, len(v)):]
	}
	return false
}

// request is a parsed request head: views into it.
type request struct {
	method, target span
	http10         bool
	fields
}

func parseRequest(h []byte, r *request) error {
	line, _, _ := bytes.Cut(h, []byte("\n"))
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBad
	}
	for _, b := range line[:sp] {
		if !httpwire.IsTokenByte(b) {
			return errBad
		}
	}
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || rest[0] != '/' {
		return errBad
	}
	for _, b := range rest[:sp2] {
		if b <= ' ' || b == 0x7f {
			return errBad
		}
	}
	version := bytes.TrimSuffix(rest[sp2+1:], []byte("\r"))
	switch string(version) {
	case "HTTP/1.1":
		r.http10 = false
	case "HTTP/1.0":
		r.http10 = true
	default:
		return errBad
	}
	r.method = span{0, sp}
	r.target = span{sp + 1, sp + 1 + sp2}
	if err := parseFields(h, len(line)+1, &r.fields); err != nil {
		return err
	}
	if r.host < 0 {
		return errBad // RFC 9112 §3.2; and HTTP/1.0 has no default host here
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendUUID appends a random (version 4) UUID.
func appendUUID(b []byte) []byte {
	var u [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		u[i], u[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&15])
	}
	return b
}

func appendField(b, h []byte, kv [2]span) []byte {
	b = append(b, h[kv[0].a:kv[0].b]...)
	b = append(b, ": "...)
	b = append(b, h[kv[1].a:kv[1].b]...)
	return append(b, "\r\n"...)
}

const (
	reply400 = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	reply404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	reply501 = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	reply502 = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	reply503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
)

func (l *Lean) serve(nc net.Conn) {
	d := &leanDown{nc: nc}
	l.mu.Lock()
	l.downs[d] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.downs, d)
		l.mu.Unlock()
		nc.Close()
	}()
	c := raw(nc)
	br := bufio.NewReaderSize(c, 4096)
	out := make([]byte, 0, 4096)
	up := make([]byte, 0, 1024)
	var r request
	for {
		h, err := readHead(br)
		if err != nil {
			return
		}
		d.last.Store(0)
		start := time.Now()
		l.Stats.Requests.Add(1)
		if err := parseRequest(h, &r); err != nil {
			_, _ = io.WriteString(c, reply400)
			return
		}
		if r.body {
			_, _ = io.WriteString(c, reply501)
			return
		}
		closeAfter := r.close || r.http10
		keep, err := l.exchange(c, h, &r, closeAfter, up[:0], out[:0])
		if err != nil || !keep || closeAfter {
			return
		}
		if _, err := br.Discard(len(h)); err != nil {
			return
		}
		end := time.Now()
		d.last.Store(end.UnixNano())
		l.Stats.LatencyUS[bits.Len64(uint64(end.Sub(start)/time.Microsecond))].Add(1)
	}
}

// exchange routes the request r (head h), relays it and writes the answer
// to c. keep is false when the client connection must end.
func (l *Lean) exchange(c io.Writer, h []byte, r *request, closeAfter bool, up, out []byte) (keep bool, err error) {
	path := h[r.target.a:r.target.b]
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	route := -1
	for i, p := range l.prefixes {
		if bytes.HasPrefix(path, []byte(p)) {
			route = i
			break
		}
	}
	if route < 0 {
		l.Stats.NoRoute.Add(1)
		_, err = io.WriteString(c, reply404)
		return err == nil, err
	}

	// The upstream request: its request line, the client's end-to-end
	// fields, and ours.
	up = append(up, h[:r.target.b]...)
	up = append(up, " HTTP/1.1\r\n"...)
	for i := 0; i < r.n; i++ {
		if r.hop&(1<<i) == 0 {
			up = appendField(up, h, r.kv[i])
		}
	}
	up = append(up, "X-Forwarded-Proto: http\r\n"...)
	if r.reqID < 0 {
		up = append(up, "X-Request-Id: "...)
		up = appendUUID(up)
		up = append(up, "\r\n"...)
	}
	up = append(up, "\r\n"...)

	if l.active.Add(1) > l.maxActive {
		l.active.Add(-1)
		l.Stats.Overflow.Add(1)
		_, err = io.WriteString(c, reply503)
		return err == nil, err
	}
	defer l.active.Add(-1)
	u, err := l.get(l.upstreams[int(l.rr.Add(1))%len(l.upstreams)])
	if err != nil {
		l.Stats.Class5xx.Add(1)
		_, _ = io.WriteString(c, reply502)
		return false, nil
	}
	l.Stats.Upstream.Add(1)
	head := eqFold(h[r.method.a:r.method.b], "head")
	u.start.Store(time.Now().UnixNano())
	out, reuse, err := relayResponse(u, up, out, head, closeAfter)
	u.start.Store(0)
	l.put(u, err == nil && reuse)
	if err != nil {
		l.Stats.Class5xx.Add(1)
		_, _ = io.WriteString(c, reply502)
		return false, nil
	}
	l.Stats.Class2xx.Add(1)
	l.Stats.BytesOut.Add(uint64(len(out)))
	_, err = c.Write(out)
	return err == nil, err
}

// relayResponse sends req on u and appends the client's response to out:
// hop-by-hop fields removed, Server replaced. reuse reports whether u can
// serve another request.
func relayResponse(u *leanUp, req, out []byte, head, closeAfter bool) (_ []byte, reuse bool, err error) {
	if _, err := u.c.Write(req); err != nil {
		return out, false, err
	}
	rh, err := readHead(u.br)
	if err != nil {
		return out, false, err
	}
	line, _, _ := bytes.Cut(rh, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return out, false, errBad
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 200 || status > 599 {
		return out, false, errBad // 1xx: not relayed here
	}
	var f fields
	if err := parseFields(rh, len(line)+2, &f); err != nil {
		return out, false, err
	}
	out = append(out, "HTTP/1.1 "...)
	out = append(out, line[9:]...)
	out = append(out, "\r\n"...)
	n := -1
	for i := 0; i < f.n; i++ {
		kv := f.kv[i]
		name := rh[kv[0].a:kv[0].b]
		switch {
		case f.hop&(1<<i) != 0:
			if len(name) == 17 {
				return out, false, errBad // Transfer-Encoding: not framed here
			}
			continue
		case len(name) == 6 && eqFold(name, "server"):
			continue
		case len(name) == 14 && eqFold(name, "content-length"):
			v, err := strconv.Atoi(string(rh[kv[1].a:kv[1].b]))
			if err != nil || v < 0 || n >= 0 && v != n {
				return out, false, errBad
			}
			n = v
		}
		out = appendField(out, rh, kv)
	}
	if head || status == 204 || status == 304 {
		n = 0 // no body follows
	} else if n < 0 {
		return out, false, errBad // read to close: not framed here
	}
	out = append(out, "Server: outrigger\r\n"...)
	if closeAfter {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	_, _ = u.br.Discard(len(rh))
	for n > 0 {
		b, err := u.br.Peek(min(n, u.br.Size()))
		if len(b) == 0 {
			return out, false, err
		}
		out = append(out, b...)
		_, _ = u.br.Discard(len(b))
		n -= len(b)
	}
	return out, !f.close, nil
}
