package main

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata keys the interop spec echoes back, as initial metadata and as a
// trailer: the proof that headers and trailers survive the proxy.
const (
	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

// maxPayload caps a requested response payload, below gRPC's default 4 MiB
// message limit, so a client cannot make the demo allocate without bound.
const maxPayload = 1 << 20

// testService implements the interop TestService minimally but faithfully:
// payload sizes, stream intervals, echoed status and metadata.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	name     string
	instance string
}

func (s *testService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (s *testService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := echoMetadata(ctx); err != nil {
		return nil, err
	}
	if err := requestedStatus(in.GetResponseStatus()); err != nil {
		return nil, err
	}
	pl, err := newPayload(in.GetResponseType(), in.GetResponseSize())
	if err != nil {
		return nil, err
	}
	resp := &testgrpc.SimpleResponse{Payload: pl, Hostname: s.instance}
	if in.GetFillServerId() {
		resp.ServerId = s.name
	}
	return resp, nil
}

func (s *testService) CacheableUnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("cache-control", "max-age=60")); err != nil {
		return nil, status.Errorf(codes.Internal, "set cache-control: %v", err)
	}
	return s.UnaryCall(ctx, in)
}

func (s *testService) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	if err := sendResponses(stream.Context(), in, stream.Send); err != nil {
		return err
	}
	return requestedStatus(in.GetResponseStatus())
}

func (s *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	var sum int64
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(min(sum, 1<<31-1))})
		}
		if err != nil {
			return err
		}
		sum += int64(len(in.GetPayload().GetBody()))
	}
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	if err := echoMetadata(ctx); err != nil {
		return err
	}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := requestedStatus(in.GetResponseStatus()); err != nil {
			return err
		}
		if err := sendResponses(ctx, in, stream.Send); err != nil {
			return err
		}
	}
}

// HalfDuplexCall buffers every request until the client half-closes, then
// answers them in order.
func (s *testService) HalfDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	var reqs []*testgrpc.StreamingOutputCallRequest
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, in)
	}
	for _, in := range reqs {
		if err := sendResponses(stream.Context(), in, stream.Send); err != nil {
			return err
		}
	}
	return nil
}

// sendResponses sends one message per response parameter, each after its
// requested interval, and gives up when the RPC ends.
func sendResponses(ctx context.Context, in *testgrpc.StreamingOutputCallRequest, send func(*testgrpc.StreamingOutputCallResponse) error) error {
	for _, p := range in.GetResponseParameters() {
		if us := p.GetIntervalUs(); us > 0 {
			if err := waitFor(ctx, time.Duration(us)*time.Microsecond); err != nil {
				return err
			}
		}
		pl, err := newPayload(in.GetResponseType(), p.GetSize())
		if err != nil {
			return err
		}
		if err := send(&testgrpc.StreamingOutputCallResponse{Payload: pl}); err != nil {
			return err
		}
	}
	return nil
}

// waitFor is the requested pause between streamed messages; the RPC ending
// cuts it short.
func waitFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func newPayload(t testgrpc.PayloadType, size int32) (*testgrpc.Payload, error) {
	if t != testgrpc.PayloadType_COMPRESSABLE {
		return nil, status.Errorf(codes.InvalidArgument, "unsupported payload type %v", t)
	}
	if size < 0 || size > maxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "response size %d outside [0, %d]", size, maxPayload)
	}
	return &testgrpc.Payload{Type: t, Body: make([]byte, size)}, nil
}

// requestedStatus turns an EchoStatus the client asked for into the error to
// return, or nil for OK.
func requestedStatus(st *testgrpc.EchoStatus) error {
	if st == nil || codes.Code(st.GetCode()) == codes.OK {
		return nil
	}
	return status.Error(codes.Code(st.GetCode()), st.GetMessage())
}

// echoMetadata copies the interop echo keys from the request into the
// response's initial metadata and trailer. grpc.SetHeader and SetTrailer
// serve unary and streaming handlers alike.
func echoMetadata(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	if v := md.Get(echoInitialKey); len(v) > 0 {
		if err := grpc.SetHeader(ctx, metadata.Pairs(echoInitialKey, v[0])); err != nil {
			return status.Errorf(codes.Internal, "echo initial metadata: %v", err)
		}
	}
	if v := md.Get(echoTrailingKey); len(v) > 0 {
		if err := grpc.SetTrailer(ctx, metadata.Pairs(echoTrailingKey, v[0])); err != nil {
			return status.Errorf(codes.Internal, "echo trailing metadata: %v", err)
		}
	}
	return nil
}
