package transport

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies why an upstream exchange failed; callers map it to a
// status (connect failure 503, reset 502, timeout 504, canceled 499).
type Kind uint8

const (
	// KindConnect: no connection was made (refused, unreachable, connect
	// timeout, TLS handshake failure). Nothing reached the upstream.
	KindConnect Kind = iota + 1
	// KindReset: the connection failed after it was established — closed,
	// reset, or a protocol error — before or after the response headers.
	KindReset
	// KindTimeout: the request's context deadline passed (route timeout).
	KindTimeout
	// KindCanceled: the request's context was canceled (downstream left).
	KindCanceled
	// KindOverflow: a circuit breaker (max_connections with
	// max_pending_requests) refused the request; nothing was sent.
	KindOverflow
)

func (k Kind) String() string {
	switch k {
	case KindConnect:
		return "connect failure"
	case KindReset:
		return "reset"
	case KindTimeout:
		return "timeout"
	case KindCanceled:
		return "canceled"
	case KindOverflow:
		return "overflow"
	}
	return "unknown"
}

// Sentinels for errors.Is: errors.Is(err, transport.ErrConnect) holds for
// any *Error of that kind.
var (
	ErrConnect  = errors.New("upstream connect failure")
	ErrReset    = errors.New("upstream reset")
	ErrTimeout  = errors.New("upstream request timeout")
	ErrCanceled = errors.New("upstream request canceled")
	ErrOverflow = errors.New("upstream overflow")
)

// Error is every failure the transport returns.
type Error struct {
	Kind Kind
	Addr string // the upstream "host:port"
	// TLS: for KindConnect, the TCP connection succeeded and the TLS
	// handshake failed.
	TLS bool
	// AfterHeaders: the failure happened while reading the response body,
	// so the response status has already been passed on.
	AfterHeaders bool
	Err          error
}

func (e *Error) Error() string {
	phase := ""
	switch {
	case e.Kind == KindConnect && e.TLS:
		phase = " (TLS handshake)"
	case e.AfterHeaders:
		phase = " after response headers"
	}
	return fmt.Sprintf("upstream %s %s%s: %v", e.Addr, e.Kind, phase, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes the sentinels match by kind.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrConnect:
		return e.Kind == KindConnect
	case ErrReset:
		return e.Kind == KindReset
	case ErrTimeout:
		return e.Kind == KindTimeout
	case ErrCanceled:
		return e.Kind == KindCanceled
	case ErrOverflow:
		return e.Kind == KindOverflow
	}
	return false
}

// KindOf returns the kind of a transport error, 0 for nil or a foreign error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Classify turns an error from http.Transport (or from reading a response
// body) into an *Error. The dialer marks connect failures itself, so what is
// left is either the request's own context ending or the connection failing
// after it was made. ctx is the request's context.
func Classify(ctx context.Context, addr string, err error, afterHeaders bool) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.AfterHeaders == afterHeaders || e.Kind == KindConnect {
			return e
		}
		return &Error{Kind: e.Kind, Addr: e.Addr, TLS: e.TLS, AfterHeaders: afterHeaders, Err: e.Err}
	}
	kind := contextKind(ctx)
	switch {
	case kind != 0:
	case errors.Is(err, context.DeadlineExceeded):
		kind = KindTimeout
	case errors.Is(err, context.Canceled):
		kind = KindCanceled
	default:
		kind = KindReset
	}
	return &Error{Kind: kind, Addr: addr, AfterHeaders: afterHeaders, Err: err}
}

// contextKind says why a request's context ended, 0 if it has not: its
// deadline, or a cancellation whose cause reports Timeout() (the router's
// own route, idle and request timeouts cancel with such a cause), is a
// timeout; any other end (the client left) is a cancel.
func contextKind(ctx context.Context) Kind {
	e := ctx.Err()
	if e == nil {
		return 0
	}
	if e == context.DeadlineExceeded {
		return KindTimeout
	}
	var t interface{ Timeout() bool }
	if errors.As(context.Cause(ctx), &t) && t.Timeout() {
		return KindTimeout
	}
	return KindCanceled
}
