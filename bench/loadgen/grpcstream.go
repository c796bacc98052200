package loadgen

import (
	"context"
	"fmt"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// grpcStreamClient measures messages on long-lived bidi streams: what a
// proxy costs per frame once a stream is open, as opposed to per call.
type grpcStreamClient struct {
	*grpcClient
	msg *testpb.StreamingOutputCallRequest
}

func newGRPCStreamClient(t Target) (Client, error) {
	c, err := newGRPCClient(t)
	if err != nil {
		return nil, err
	}
	return &grpcStreamClient{
		grpcClient: c.(*grpcClient),
		msg: &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: int32(t.ResponseSize)}},
			Payload:            &testpb.Payload{Body: t.Body},
		},
	}, nil
}

func (c *grpcStreamClient) NewSession() (Session, error) {
	cc := c.conns[int(c.next.Add(1)-1)%len(c.conns)]
	return &grpcStreamSession{c: c, stub: testpb.NewTestServiceClient(cc)}, nil
}

type grpcStreamSession struct {
	c      *grpcStreamClient
	stub   testpb.TestServiceClient
	stream testpb.TestService_FullDuplexCallClient
	cancel context.CancelFunc
}

// Do sends one message and waits for its answer. The stream is opened on
// first use and reopened after a failure; its lifetime is the session's, so
// the per-operation timeout is enforced by the caller's context only.
func (s *grpcStreamSession) Do(ctx context.Context) error {
	if s.stream == nil {
		sctx, cancel := context.WithCancel(context.Background())
		st, err := s.stub.FullDuplexCall(sctx)
		if err != nil {
			cancel()
			return fmt.Errorf("grpc-stream: open: %w", err)
		}
		s.stream, s.cancel = st, cancel
	}
	// If the operation's context ends first, cancel the stream: Recv then
	// returns. No goroutine unless that happens.
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	if err := s.stream.Send(s.c.msg); err != nil {
		return s.fail(fmt.Errorf("grpc-stream: send: %w", err))
	}
	resp, err := s.stream.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return s.fail(fmt.Errorf("grpc-stream: %w", ctx.Err()))
		}
		if st, ok := status.FromError(err); ok {
			return s.fail(&StatusError{Protocol: GRPCStream, Status: st.Code().String() + ": " + st.Message()})
		}
		return s.fail(fmt.Errorf("grpc-stream: recv: %w", err))
	}
	if got := len(resp.GetPayload().GetBody()); got != s.c.t.ResponseSize {
		return fmt.Errorf("grpc-stream: response payload %d bytes, want %d", got, s.c.t.ResponseSize)
	}
	return nil
}

// fail drops the stream so the next operation opens a new one.
func (s *grpcStreamSession) fail(err error) error {
	s.Close()
	return err
}

func (s *grpcStreamSession) Close() error {
	if s.stream != nil {
		_ = s.stream.CloseSend()
		s.cancel()
		s.stream, s.cancel = nil, nil
	}
	return nil
}
