package healthcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxTCPResponse bounds what a TCP check buffers while looking for its
// Receive blobs; Envoy waits until the timeout, this fails sooner.
const maxTCPResponse = 64 << 10

// tcpProber is Envoy's TCP health checker. Without Receive it passes once
// connected and closes the connection. With Receive it writes Send and reads
// until every blob is found in order; a connection closed first is a network
// failure and a response that never matches ends in a timeout, as in Envoy.
type tcpProber struct {
	addr    string
	timeout time.Duration
	reuse   bool
	send    []byte
	receive [][]byte
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	tls     *tls.Config
	conn    net.Conn
	buf     []byte
}

func newTCPProber(cfg *Config, addr string, opts *Options) *tcpProber {
	p := &tcpProber{
		addr:    addr,
		timeout: cfg.Timeout,
		reuse:   cfg.reuse(),
		send:    cfg.TCP.Send,
		receive: cfg.TCP.Receive,
		dial:    opts.Dial,
	}
	if opts.TLS != nil {
		p.tls = tlsFor(opts.TLS, addr)
	}
	return p
}

func (p *tcpProber) probe(ctx context.Context) result {
	if p.conn == nil {
		c, err := p.connect(ctx)
		if err != nil {
			return networkResult(ctx, p.timeout, err)
		}
		p.conn = c
	}
	conn := p.conn
	if len(p.receive) == 0 {
		// Connect-only (Envoy does not even write Send here): done.
		p.close()
		return result{outcome: passed}
	}
	// The deadline bounds each read and write; canceling ctx (Close) breaks
	// them at once.
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	r := p.exchange(ctx, conn)
	if r.outcome != passed || !p.reuse {
		p.close()
	}
	return r
}

func (p *tcpProber) exchange(ctx context.Context, conn net.Conn) result {
	if len(p.send) > 0 {
		if _, err := conn.Write(p.send); err != nil {
			return networkResult(ctx, p.timeout, fmt.Errorf("writing: %w", err))
		}
	}
	p.buf = p.buf[:0]
	var chunk [4096]byte
	for {
		n, err := conn.Read(chunk[:])
		p.buf = append(p.buf, chunk[:n]...)
		if matchPayload(p.receive, p.buf) {
			return result{outcome: passed}
		}
		switch {
		case err == nil && len(p.buf) > maxTCPResponse:
			return result{outcome: network, reason: fmt.Sprintf("no match in the first %d bytes of the response", len(p.buf))}
		case errors.Is(err, io.EOF):
			return result{outcome: network, reason: fmt.Sprintf("connection closed after %d bytes that do not match", len(p.buf))}
		case err != nil:
			return networkResult(ctx, p.timeout, fmt.Errorf("reading: %w", err))
		}
	}
}

// connect dials, and shakes hands when the cluster uses TLS: Envoy checks
// over the cluster's transport socket.
func (p *tcpProber) connect(ctx context.Context) (net.Conn, error) {
	c, err := p.dial(ctx, "tcp", p.addr)
	if err != nil || p.tls == nil {
		return c, err
	}
	tc := tls.Client(c, p.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

func (p *tcpProber) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// matchPayload is Envoy's PayloadMatcher: each blob is found after the end
// of the previous one.
func matchPayload(blobs [][]byte, buf []byte) bool {
	for _, b := range blobs {
		i := bytes.Index(buf, b)
		if i < 0 {
			return false
		}
		buf = buf[i+len(b):]
	}
	return true
}

// tlsFor clones the cluster's TLS for one host. Without a ServerName, the
// host's IP stands in: Go sends no SNI for an IP, as Envoy sends none
// without sni, and gRPC would otherwise send the authority. protos, when
// given, replace NextProtos.
func tlsFor(base *tls.Config, addr string, protos ...string) *tls.Config {
	c := base.Clone()
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
	}
	if len(protos) > 0 {
		c.NextProtos = protos
	}
	return c
}
