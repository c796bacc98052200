package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Client spreads sessions over Conns QUIC connections, each its own
// http3.Transport (one Transport keeps one connection per authority). The
// bench's certificates are self-signed, so the client does not verify them.
type h3Client struct {
	t      Target
	url    string
	trs    []*http3.Transport
	next   atomic.Uint64
	method string
}

func newH3Client(t Target) (Client, error) {
	n := t.Conns
	if n < 1 {
		n = 1
	}
	c := &h3Client{t: t, url: "https://" + t.host() + t.path(), method: t.method()}
	for range n {
		c.trs = append(c.trs, &http3.Transport{
			// #nosec G402 -- loopback bench against its own self-signed certificate.
			TLSClientConfig:    &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}},
			QUICConfig:         &quic.Config{MaxIncomingStreams: 1000},
			DisableCompression: true,
		})
	}
	return c, nil
}

func (c *h3Client) NewSession() (Session, error) {
	tr := c.trs[int(c.next.Add(1)-1)%len(c.trs)]
	return &h3Session{c: c, client: &http.Client{Transport: tr}}, nil
}

func (c *h3Client) Close() error {
	var first error
	for _, tr := range c.trs {
		if err := tr.Close(); err != nil && first == nil {
			first = fmt.Errorf("h3: close: %w", err)
		}
	}
	return first
}

type h3Session struct {
	c      *h3Client
	client *http.Client
}

func (s *h3Session) Do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.t.timeout())
	defer cancel()
	var body io.Reader
	if len(s.c.t.Body) > 0 {
		body = bytes.NewReader(s.c.t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.c.method, s.c.url, body)
	if err != nil {
		return fmt.Errorf("h3: build request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("h3: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("h3: read body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Protocol: H3, Status: strconv.Itoa(resp.StatusCode)}
	}
	return nil
}

func (s *h3Session) Close() error { return nil }
