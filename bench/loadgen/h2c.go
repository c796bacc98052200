package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// h2cClient spreads sessions over Conns HTTP/2 prior-knowledge connections,
// each a separate http2.Transport so they really are separate TCP
// connections (one Transport would share a connection until it is full).
type h2cClient struct {
	t      Target
	url    string
	trs    []*http2.Transport
	next   atomic.Uint64
	method string
}

func newH2CClient(t Target) (Client, error) {
	n := t.Conns
	if n < 1 {
		n = 1
	}
	c := &h2cClient{t: t, url: "http://" + t.host() + t.path(), method: t.method()}
	addr := t.Addr
	for range n {
		c.trs = append(c.trs, &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		})
	}
	return c, nil
}

func (c *h2cClient) NewSession() (Session, error) {
	tr := c.trs[int(c.next.Add(1)-1)%len(c.trs)]
	return &h2cSession{c: c, client: &http.Client{Transport: tr}}, nil
}

func (c *h2cClient) Close() error {
	for _, tr := range c.trs {
		tr.CloseIdleConnections()
	}
	return nil
}

type h2cSession struct {
	c      *h2cClient
	client *http.Client
}

func (s *h2cSession) Do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.t.timeout())
	defer cancel()
	var body io.Reader
	if len(s.c.t.Body) > 0 {
		body = bytes.NewReader(s.c.t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.c.method, s.c.url, body)
	if err != nil {
		return fmt.Errorf("h2c: build request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("h2c: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("h2c: read body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Protocol: H2C, Status: strconv.Itoa(resp.StatusCode)}
	}
	return nil
}

func (s *h2cSession) Close() error { return nil }
