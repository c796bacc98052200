package forward

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
)

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
