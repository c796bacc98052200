package loadgen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Protocol is the wire protocol a run speaks to the target.
type Protocol string

const (
	HTTP1 Protocol = "http1" // HTTP/1.1 keep-alive, one request in flight per connection
	H2C   Protocol = "h2c"   // HTTP/2 cleartext with prior knowledge, streams multiplexed
	GRPC  Protocol = "grpc"  // gRPC unary grpc.testing.TestService/UnaryCall over h2c
	// GRPCStream: one long-lived bidi FullDuplexCall stream per worker; an
	// operation is one message sent and its answer received on it.
	GRPCStream Protocol = "grpc-stream"
	// H3 is HTTP/3 over QUIC (quic-go's http3.Transport), streams
	// multiplexed over Conns connections; certificates are not verified.
	H3 Protocol = "h3"
	// TCPBulk reads a stream of bytes over raw TCP, one connection per
	// worker; an operation is TCPBulkChunk bytes read.
	TCPBulk Protocol = "tcp-bulk"
)

// ErrUnsupportedProtocol is returned for a protocol with no client registered.
var ErrUnsupportedProtocol = errors.New("loadgen: protocol not supported")

// Target says where and what to send.
type Target struct {
	Protocol Protocol
	// Addr is host:port on loopback.
	Addr string
	// Method and Path for HTTP; Path defaults to "/". A non-empty Body is sent
	// with Content-Length (POST unless Method says otherwise).
	Method string
	Path   string
	Body   []byte
	// Host overrides the Host header / :authority.
	Host string
	// ResponseSize is the payload size a gRPC UnaryCall asks for.
	ResponseSize int
	// Conns is how many connections the client opens for multiplexed
	// protocols (h2c, gRPC, h3); HTTP/1.1 uses one connection per worker.
	Conns int
	// Timeout bounds each request; zero means 10 s.
	Timeout time.Duration
}

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return 10 * time.Second
}

func (t Target) method() string {
	switch {
	case t.Method != "":
		return t.Method
	case len(t.Body) > 0:
		return "POST"
	default:
		return "GET"
	}
}

func (t Target) path() string {
	if t.Path == "" {
		return "/"
	}
	return t.Path
}

func (t Target) host() string {
	if t.Host != "" {
		return t.Host
	}
	return t.Addr
}

// Client is a protocol client for one target. Sessions share its connections
// where the protocol multiplexes.
type Client interface {
	// NewSession returns a session for one worker goroutine.
	NewSession() (Session, error)
	// Close releases every connection; sessions must be done by then.
	Close() error
}

// Session sends requests one at a time for a single worker.
type Session interface {
	// Do sends one request and reads the whole response; a non-success
	// status is an error of type *StatusError.
	Do(ctx context.Context) error
	Close() error
}

// StatusError is a response that arrived but did not succeed.
type StatusError struct {
	Protocol Protocol
	Status   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: status %s", e.Protocol, e.Status)
}

// ClientFactory builds a client for a target.
type ClientFactory func(Target) (Client, error)

var factories = map[Protocol]ClientFactory{
	HTTP1: newHTTP1Client,
	H2C:   newH2CClient,
	GRPC:  newGRPCClient,

	GRPCStream: newGRPCStreamClient,
	H3:         newH3Client,
	TCPBulk:    newTCPBulkClient,
}

// RegisterProtocol adds or replaces the client for a protocol. Call it from
// an init function, before any run starts; it is not safe concurrently with
// NewClient.
func RegisterProtocol(p Protocol, f ClientFactory) {
	factories[p] = f
}

// NewClient builds the client for t.Protocol.
func NewClient(t Target) (Client, error) {
	f, ok := factories[t.Protocol]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedProtocol, t.Protocol)
	}
	if t.Addr == "" {
		return nil, errors.New("loadgen: target address is empty")
	}
	return f(t)
}
