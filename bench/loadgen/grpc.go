package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// grpcClient sends grpc.testing.TestService/UnaryCall over Conns channels.
type grpcClient struct {
	t     Target
	conns []*grpc.ClientConn
	next  atomic.Uint64
	req   *testpb.SimpleRequest
}

func newGRPCClient(t Target) (Client, error) {
	n := t.Conns
	if n < 1 {
		n = 1
	}
	c := &grpcClient{t: t, req: &testpb.SimpleRequest{
		ResponseSize: int32(t.ResponseSize),
		Payload:      &testpb.Payload{Body: t.Body},
	}}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if t.Host != "" {
		opts = append(opts, grpc.WithAuthority(t.Host))
	}
	for range n {
		// passthrough: the address is already an IP:port; skip DNS.
		cc, err := grpc.NewClient("passthrough:///"+t.Addr, opts...)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("grpc: client for %s: %w", t.Addr, err)
		}
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

func (c *grpcClient) NewSession() (Session, error) {
	cc := c.conns[int(c.next.Add(1)-1)%len(c.conns)]
	return &grpcSession{c: c, stub: testpb.NewTestServiceClient(cc)}, nil
}

func (c *grpcClient) Close() error {
	var errs []error
	for _, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type grpcSession struct {
	c    *grpcClient
	stub testpb.TestServiceClient
}

func (s *grpcSession) Do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.t.timeout())
	defer cancel()
	resp, err := s.stub.UnaryCall(ctx, s.c.req)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return &StatusError{Protocol: GRPC, Status: st.Code().String() + ": " + st.Message()}
		}
		return fmt.Errorf("grpc: %w", err)
	}
	if got := len(resp.GetPayload().GetBody()); got != s.c.t.ResponseSize {
		return fmt.Errorf("grpc: response payload %d bytes, want %d", got, s.c.t.ResponseSize)
	}
	return nil
}

func (s *grpcSession) Close() error { return nil }
