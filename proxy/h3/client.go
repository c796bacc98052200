package h3

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// ClientOptions configure a Client. Zero durations take the defaults.
type ClientOptions struct {
	// TLS to the upstream (QUIC is always TLS). It is cloned; NextProtos
	// is set to h3. An empty ServerName verifies against the dialed host.
	TLS *tls.Config
	// ConnectTimeout bounds the QUIC handshake (default 5s).
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection with no network activity (default 1h,
	// Envoy's idle_timeout; QUIC keep-alives are not sent).
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response's HEADERS frame; 0 is
	// quic-go's default.
	MaxResponseHeaderBytes int
	// ConnOpened, if set, hears about every connection made; the func it
	// returns (if not nil) is called once when that connection closes.
	ConnOpened func(addr string) (closed func())
}

// Client carries requests to HTTP/3 upstreams over a pool of QUIC
// connections, one per authority, multiplexing streams. It is safe for
// concurrent use.
type Client struct {
	opts ClientOptions
	t    *http3.Transport
}

// DialError is a failure to set a connection up (resolution, the
// handshake, its TLS part): nothing reached the upstream's application.
type DialError struct {
	Addr string
	// TLS: the peer answered but the TLS handshake inside QUIC failed.
	TLS bool
	Err error
}

func (e *DialError) Error() string { return "h3: connect to " + e.Addr + ": " + e.Err.Error() }

func (e *DialError) Unwrap() error { return e.Err }

// NewClient builds a Client; it dials nothing until the first request.
func NewClient(o ClientOptions) (*Client, error) {
	if o.TLS == nil {
		return nil, errors.New("h3: an HTTP/3 upstream needs TLS")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Hour
	}
	c := &Client{opts: o}
	tc := o.TLS.Clone()
	tc.NextProtos = []string{NextProto}
	if tc.ClientSessionCache == nil {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	c.t = &http3.Transport{
		TLSClientConfig:        tc,
		QUICConfig:             &quic.Config{HandshakeIdleTimeout: o.ConnectTimeout, MaxIdleTimeout: o.IdleTimeout},
		Dial:                   c.dial,
		MaxResponseHeaderBytes: o.MaxResponseHeaderBytes,
		DisableCompression:     true, // a proxy must not add Accept-Encoding
	}
	return c, nil
}

func (c *Client) dial(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn, err := quic.DialAddr(ctx, addr, tc, qc)
	if err != nil {
		var te *quic.TransportError
		isTLS := errors.As(err, &te) && te.ErrorCode.IsCryptoError()
		return nil, &DialError{Addr: addr, TLS: isTLS, Err: err}
	}
	if c.opts.ConnOpened != nil {
		if closed := c.opts.ConnOpened(addr); closed != nil {
			go func() { <-conn.Context().Done(); closed() }()
		}
	}
	return conn, nil
}

// RoundTrip sends req (an https URL naming the upstream) over HTTP/3. A
// failure to connect is a *DialError; any other error happened once the
// request was on its way.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.t.RoundTrip(req)
}

// CloseIdleConnections closes connections carrying no request.
func (c *Client) CloseIdleConnections() { c.t.CloseIdleConnections() }

// Close closes every connection.
func (c *Client) Close() error { return c.t.Close() }
