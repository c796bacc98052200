package healthcheck

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcProber is Envoy's gRPC health checker: grpc.health.v1.Health/Check
// over a client connection of its own. SERVING passes; any other answer or
// gRPC status fails the host at once (Envoy's ACTIVE failure), except
// UNAVAILABLE, which is how grpc-go reports a connection that failed or
// broke, counted as a network failure as Envoy counts a reset stream.
type grpcProber struct {
	timeout time.Duration
	reuse   bool
	target  string
	dialOps []grpc.DialOption
	md      metadata.MD
	req     *healthpb.HealthCheckRequest
	cc      *grpc.ClientConn
}

func newGRPCProber(cfg *Config, addr string, opts *Options) *grpcProber {
	g := cfg.GRPC
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = newSNICreds(tlsFor(opts.TLS, addr, "h2"))
	}
	dial := opts.Dial
	p := &grpcProber{
		timeout: cfg.Timeout,
		reuse:   cfg.reuse(),
		// passthrough: the address is dialed as is, never resolved.
		target: "passthrough:///" + addr,
		dialOps: []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithAuthority(firstNonEmpty(g.Authority, opts.ClusterName, addr)),
			grpc.WithUserAgent(DefaultUserAgent),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
				return dial(ctx, "tcp", a)
			}),
			grpc.WithDisableRetry(),
		},
		req: &healthpb.HealthCheckRequest{Service: g.ServiceName},
	}
	if len(g.InitialMetadata) > 0 {
		p.md = metadata.MD{}
		for _, h := range g.InitialMetadata {
			p.md.Append(h.Name, h.Value)
		}
	}
	return p
}

func (p *grpcProber) probe(ctx context.Context) result {
	if p.cc == nil {
		cc, err := grpc.NewClient(p.target, p.dialOps...)
		if err != nil {
			return result{outcome: network, reason: fmt.Sprintf("gRPC client: %v", err)}
		}
		p.cc = cc
	}
	if p.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, p.md)
	}
	resp, err := healthpb.NewHealthClient(p.cc).Check(ctx, p.req)
	var r result
	switch {
	case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
		r = result{outcome: passed}
	case err == nil:
		r = result{outcome: failed, reason: "gRPC health " + resp.GetStatus().String()}
	case ctx.Err() != nil, status.Code(err) == codes.DeadlineExceeded:
		// grpc-go's own deadline timer can fire a moment before the
		// context reports it: DeadlineExceeded is our timeout either way.
		r = result{outcome: timedOut, reason: fmt.Sprintf("no answer within the %v timeout", p.timeout)}
	case status.Code(err) == codes.Unavailable:
		r = result{outcome: network, reason: status.Convert(err).Message()}
	default:
		s := status.Convert(err)
		r = result{outcome: failed, reason: fmt.Sprintf("gRPC status %v: %s", s.Code(), s.Message())}
	}
	// Like Envoy, start afresh after a broken connection or a timeout, and
	// after every check without connection reuse. A new ClientConn also
	// skips grpc-go's reconnect backoff, so a recovered host is seen at the
	// next interval.
	if !p.reuse || r.outcome == network || r.outcome == timedOut {
		p.close()
	}
	return r
}

func (p *grpcProber) close() {
	if p.cc != nil {
		p.cc.Close()
		p.cc = nil
	}
}

// sniCreds is gRPC's TLS with the SNI taken from the cluster's TLS (or the
// host's IP, which sends none) instead of the :authority, which grpc-go would
// otherwise use as the server name; the authority is the cluster's name,
// Envoy's default, not a name the host's certificate need carry.
type sniCreds struct {
	credentials.TransportCredentials
	serverName string
}

func newSNICreds(cfg *tls.Config) credentials.TransportCredentials {
	name := cfg.ServerName
	cfg = cfg.Clone()
	// Set in the inner config, grpc-go would also report it as the
	// channel's authority and refuse WithAuthority.
	cfg.ServerName = ""
	return &sniCreds{TransportCredentials: credentials.NewTLS(cfg), serverName: name}
}

func (c *sniCreds) ClientHandshake(ctx context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.TransportCredentials.ClientHandshake(ctx, c.serverName, raw)
}

func (c *sniCreds) Clone() credentials.TransportCredentials {
	return &sniCreds{TransportCredentials: c.TransportCredentials.Clone(), serverName: c.serverName}
}
