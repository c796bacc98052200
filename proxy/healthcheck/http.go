package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxHTTPBody is how much of a response body a check reads so the
// connection can be reused; a longer body closes the connection instead.
const maxHTTPBody = 64 << 10

// httpProber is Envoy's HTTP health checker: one request per check on a
// connection of its own (kept between checks when ReuseConnection). A status
// in ExpectedStatuses passes; one in RetriableStatuses is a retriable
// failure; any other status fails the host at once. Redirects are not
// followed.
type httpProber struct {
	check   *HTTPCheck
	timeout time.Duration
	target  *url.URL
	host    string
	tr      *http.Transport
	client  *http.Client
}

func newHTTPProber(cfg *Config, addr string, opts *Options) *httpProber {
	h := cfg.HTTP
	// Validate has parsed Path already.
	u, _ := url.ParseRequestURI(h.Path)
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	tr := &http.Transport{
		DialContext:         opts.Dial,
		DisableKeepAlives:   !cfg.reuse(),
		DisableCompression:  true,
		MaxIdleConnsPerHost: 1,
		Protocols:           new(http.Protocols),
	}
	switch {
	case opts.TLS != nil && h.Protocol == HTTP2:
		tr.TLSClientConfig = tlsFor(opts.TLS, addr, "h2")
		tr.Protocols.SetHTTP2(true)
	case opts.TLS != nil:
		tr.TLSClientConfig = tlsFor(opts.TLS, addr, "http/1.1")
		tr.Protocols.SetHTTP1(true)
	case h.Protocol == HTTP2:
		tr.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	default:
		tr.Protocols.SetHTTP1(true)
	}
	return &httpProber{
		check:   h,
		timeout: cfg.Timeout,
		target:  &url.URL{Scheme: scheme, Host: addr, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		host:    firstNonEmpty(h.Host, opts.ClusterName, addr),
		tr:      tr,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (p *httpProber) probe(ctx context.Context) result {
	req, err := http.NewRequestWithContext(ctx, p.check.Method, p.target.String(), nil)
	if err != nil {
		// Validate rules this out; report rather than panic.
		return result{outcome: failed, reason: fmt.Sprintf("building the request: %v", err)}
	}
	req.Host = p.host
	req.Header.Set("User-Agent", p.check.UserAgent)
	for _, h := range p.check.RequestHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return networkResult(ctx, p.timeout, err)
	}
	// Envoy judges a complete response: read the body to its end.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
	resp.Body.Close()
	if err != nil {
		return networkResult(ctx, p.timeout, fmt.Errorf("reading the response body: %w", err))
	}
	switch {
	case inRanges(resp.StatusCode, p.check.ExpectedStatuses):
		return result{outcome: passed}
	case inRanges(resp.StatusCode, p.check.RetriableStatuses):
		return result{outcome: retriable, reason: fmt.Sprintf("HTTP status %d (retriable)", resp.StatusCode)}
	default:
		return result{outcome: failed, reason: fmt.Sprintf("HTTP status %d", resp.StatusCode)}
	}
}

func (p *httpProber) close() { p.tr.CloseIdleConnections() }

// networkResult classifies a failed exchange: a timeout when the check's
// deadline passed (the connection's deadline, set to the same instant, may
// fire first), a network failure otherwise.
func networkResult(ctx context.Context, timeout time.Duration, err error) result {
	var ne net.Error
	if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
		return result{outcome: timedOut, reason: fmt.Sprintf("no answer within the %v timeout", timeout)}
	}
	return result{outcome: network, reason: err.Error()}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
