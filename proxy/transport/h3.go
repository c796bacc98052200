package transport

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// newH3 builds an HTTP/3 Transport: QUIC connections through proxy/h3,
// one per upstream address, streams multiplexed on it.
func newH3(o Options) (*Transport, error) {
	if o.TLS == nil {
		return nil, errors.New("transport: HTTP/3 needs TLS (QUIC is always encrypted)")
	}
	t := &Transport{opts: o, scheme: "https"}
	co := h3.ClientOptions{
		TLS:            o.TLS,
		ConnectTimeout: o.ConnectTimeout,
		IdleTimeout:    o.IdleTimeout,
	}
	if obs := o.Conns; obs != nil {
		co.ConnOpened = obs.ConnOpened
	}
	c, err := h3.NewClient(co)
	if err != nil {
		return nil, err
	}
	t.h3 = c
	return t, nil
}

// roundTripH3 sends req over HTTP/3: a failure to set up the QUIC
// connection is KindConnect (TLS set when the handshake's TLS part
// failed), anything later is classified like HTTP/2's. Body read errors
// come back unclassified.
func (t *Transport) roundTripH3(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	resp, err := t.h3.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	var de *h3.DialError
	if errors.As(err, &de) && contextKind(ctx) == 0 {
		cause := de.Err
		if errors.Is(cause, context.DeadlineExceeded) || errors.Is(cause, os.ErrDeadlineExceeded) || isTimeout(cause) {
			cause = &timeoutErr{cause}
		}
		e := &Error{Kind: KindConnect, Addr: req.URL.Host, TLS: de.TLS, Err: cause}
		if o := t.opts.Conns; o != nil {
			o.ConnectFailed(req.URL.Host, e)
		}
		return nil, e
	}
	return nil, Classify(ctx, req.URL.Host, err, false)
}

// isTimeout reports an error that says it is a timeout (QUIC's handshake
// idle timeout is one).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
