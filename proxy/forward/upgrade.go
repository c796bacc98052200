package forward

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// ExtendedConnect turns an HTTP/2 extended CONNECT (RFC 8441) asking for
// protocol (UpgradeType's answer) into the HTTP/1.1 upgrade it stands for,
// which is routed and sent upstream: a GET to the same path with
// "Upgrade: protocol" (PrepareRequestHeaders adds "Connection: Upgrade")
// and no body. For WebSocket it adds what RFC 8441 clients leave out and an
// HTTP/1.1 server requires: a fresh Sec-WebSocket-Key and
// Sec-WebSocket-Version 13 when missing. The client's stream is kept in the
// returned request's Body, which reads as empty and is sent nowhere:
// serveUpgrade splices it to the upstream once that answers 101, and
// answers the client 200. The returned writer wraps w: any other 2xx
// (an upstream that ignored the upgrade) would tell an RFC 8441 client its
// tunnel is open, so it becomes a 502 instead (see TunnelFailed). r's
// header map is modified and shared with the result; r itself is left for
// the access log.
func ExtendedConnect(w http.ResponseWriter, r *http.Request, protocol string) (http.ResponseWriter, *http.Request) {
	out := r.WithContext(r.Context())
	h := out.Header
	delete(h, ":protocol")
	h["Upgrade"] = []string{protocol}
	h["Connection"] = []string{"Upgrade"}
	if protocol == "websocket" {
		if len(h["Sec-Websocket-Key"]) == 0 {
			h["Sec-Websocket-Key"] = []string{newWebSocketKey()}
		}
		if len(h["Sec-Websocket-Version"]) == 0 {
			h["Sec-Websocket-Version"] = []string{"13"}
		}
	}
	out.Method = http.MethodGet
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Body = &h2Tunnel{stream: r.Body}
	out.ContentLength = 0 // Forward sends no body with the GET
	return &tunnelWriter{ResponseWriter: w}, out
}

// tunnelWriter is the downstream writer of an extended CONNECT: only
// serveH2Tunnel may answer it with a 2xx.
type tunnelWriter struct {
	http.ResponseWriter
	opened bool // serveH2Tunnel answered 200
	wrote  bool
	failed int // the status sent instead of a 2xx, 0 if none
}

// notSwitched is the body of the 502 sent instead of an upstream's 2xx.
const notSwitched = "upgrade failed: the upstream did not switch protocols\n"

func (t *tunnelWriter) WriteHeader(code int) {
	if t.wrote || code < 200 {
		t.ResponseWriter.WriteHeader(code)
		return
	}
	t.wrote = true
	if code < 300 && !t.opened {
		h := t.Header()
		clear(h)
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(notSwitched))}
		t.failed = http.StatusBadGateway
		t.ResponseWriter.WriteHeader(t.failed)
		_, _ = io.WriteString(t.ResponseWriter, notSwitched)
		return
	}
	t.ResponseWriter.WriteHeader(code)
}

// Write drops the body of a 2xx turned into a 502.
func (t *tunnelWriter) Write(p []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.failed != 0 {
		return len(p), nil
	}
	return t.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the stream (Flush).
func (t *tunnelWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// TunnelFailed returns the status sent instead of an upstream's 2xx on a
// writer made by ExtendedConnect (the access log records it with
// FlagUpgradeFailed), or 0.
func TunnelFailed(w http.ResponseWriter) int {
	if t, ok := w.(*tunnelWriter); ok {
		return t.failed
	}
	return 0
}

// newWebSocketKey is a Sec-WebSocket-Key (RFC 6455 §4.1): 16 random bytes,
// base64.
func newWebSocketKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(b[:])
}

// h2Tunnel is the Body of a request made by ExtendedConnect. It reads as
// empty (the GET carries nothing); stream is the client's HTTP/2 stream,
// spliced to the upstream after its 101.
type h2Tunnel struct {
	stream io.ReadCloser
}

func (*h2Tunnel) Read([]byte) (int, error) { return 0, io.EOF }
func (*h2Tunnel) Close() error             { return nil }

// serveUpgrade completes an HTTP/1.1 upgrade (WebSocket): it relays the
// upstream's 101 to the client on the hijacked connection, then copies bytes
// both ways until either side closes or the stream goes idle.
func serveUpgrade(w http.ResponseWriter, r *http.Request, resp *http.Response, p *Params, tm *streamTimer, gen uint64, res Result) Result {
	res.Status = http.StatusSwitchingProtocols
	upType := strings.ToLower(resp.Header.Get("Upgrade"))
	back, ok := resp.Body.(io.ReadWriteCloser)
	if p.Upgrade == "" || upType != p.Upgrade || !ok {
		// The upstream switched to something the client did not ask for, or
		// the transport gave no writable body.
		res.Flag = FlagUpgradeFailed
		res.Status = WriteLocalReply(w, r, ReasonUpstreamReset, "bad upgrade response")
		return res
	}
	if t, ok := r.Body.(*h2Tunnel); ok {
		return serveH2Tunnel(w, t, resp, back, p, tm, gen, res)
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		res.Flag = FlagUpgradeFailed
		res.Status = WriteLocalReply(w, r, ReasonUpgradeRejected, "connection cannot be hijacked")
		return res
	}
	defer conn.Close()
	defer back.Close()

	h := resp.Header.Clone()
	conn2 := h["Connection"]
	up := h["Upgrade"]
	removeHopByHop(h)
	h["Connection"] = conn2
	h["Upgrade"] = up
	if len(p.ServerValue) > 0 {
		h["Server"] = p.ServerValue
	}
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		res.Flag = FlagDownstreamTerm
		return res
	}
	if err := h.Write(brw); err != nil {
		res.Flag = FlagDownstreamTerm
		return res
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		res.Flag = FlagDownstreamTerm
		return res
	}
	if err := brw.Flush(); err != nil {
		res.Flag = FlagDownstreamTerm
		return res
	}

	// Stop both copies as soon as the stream ends for any reason (idle
	// timeout, client gone, upstream gone).
	done := make(chan struct{})
	defer close(done)
	ctx := resp.Request.Context()
	go func() {
		select {
		case <-ctx.Done():
			conn.Close()
			back.Close()
		case <-done:
		}
	}()

	type result struct {
		n   int64
		err error
	}
	up2down := make(chan result, 1)
	go func() {
		n, err := spliceCopy(conn, back, tm, gen)
		// Half-close so the client sees the upstream's end.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		up2down <- result{n, err}
	}()
	nIn, _ := spliceCopy(back, readerWithBuffered(conn, brw.Reader), tm, gen)
	res.BytesReceived += nIn
	// The client finished sending: close the upstream so its side ends too.
	back.Close()
	d := <-up2down
	res.BytesSent = d.n
	return res
}

// serveH2Tunnel completes an HTTP/2 extended CONNECT whose upstream
// answered the HTTP/1.1 upgrade with 101: the client gets 200 (RFC 8441
// §5) with the upstream's end-to-end headers, then the stream's DATA and
// the upstream connection are copied both ways until either side closes or
// the stream goes idle.
func serveH2Tunnel(w http.ResponseWriter, t *h2Tunnel, resp *http.Response, back io.ReadWriteCloser, p *Params, tm *streamTimer, gen uint64, res Result) Result {
	defer back.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopByHop(h)
	// The accept answers a key the client may never have sent (we made
	// it); RFC 8441 has no use for either.
	delete(h, "Sec-Websocket-Accept")
	delete(h, "Content-Length")
	if len(p.ServerValue) > 0 {
		h["Server"] = p.ServerValue
	}
	if tw, ok := w.(*tunnelWriter); ok {
		tw.opened = true
	}
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	res.Status = http.StatusOK
	if err := rc.Flush(); err != nil {
		res.Flag = FlagDownstreamTerm
		return res
	}

	// Stop both copies as soon as the stream ends for any reason (idle
	// timeout, client reset, upstream gone).
	done := make(chan struct{})
	defer close(done)
	ctx := resp.Request.Context()
	go func() {
		select {
		case <-ctx.Done():
			back.Close()
			t.stream.Close()
		case <-done:
		}
	}()

	down2up := make(chan int64, 1)
	go func() {
		n, _ := spliceCopy(back, t.stream, tm, gen)
		// The client ended its stream: end the upstream's side too, as the
		// HTTP/1.1 path does.
		back.Close()
		down2up <- n
	}()
	n, _ := spliceCopy(flushWriter{w, rc}, back, tm, gen)
	res.BytesSent = n
	// The upstream is done (or the client is gone): unblock the read of the
	// client's stream; returning ends the stream with END_STREAM.
	t.stream.Close()
	res.BytesReceived = <-down2up
	return res
}

// flushWriter sends each write at once: a tunnel's bytes must not wait in
// the HTTP/2 server's buffer.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// readerWithBuffered reads what the server had already buffered before the
// hijack, then the connection.
func readerWithBuffered(c net.Conn, br *bufio.Reader) io.Reader {
	if br != nil && br.Buffered() > 0 {
		return io.MultiReader(io.LimitReader(br, int64(br.Buffered())), c)
	}
	return c
}

// spliceCopy copies with a pooled buffer, marking activity.
func spliceCopy(dst io.Writer, src io.Reader, tm *streamTimer, gen uint64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if tm != nil {
				tm.touch(gen)
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return n, nil
			}
			return n, rerr
		}
	}
}
