package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The interop server echoes these request keys: one as initial metadata, one
// as a trailer, which shows both survive the proxy.
const (
	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

// Server streaming shape: streamMessages messages, streamInterval apart.
const (
	streamMessages = 4
	streamInterval = 100 * time.Millisecond
)

func (c *checker) grpcUnary(ctx context.Context, p printer) error {
	ctx = metadata.AppendToOutgoingContext(ctx, echoInitialKey, "hello-header", echoTrailingKey, "\x0a\x0b\x0c")
	req := &testgrpc.SimpleRequest{
		ResponseSize: 64,
		FillServerId: true,
		Payload:      &testgrpc.Payload{Body: []byte("hello through the proxy")},
	}
	var header, trailer metadata.MD
	start := time.Now()
	resp, err := testgrpc.NewTestServiceClient(c.grpc).UnaryCall(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return fmt.Errorf("UnaryCall: %s", status.Convert(err))
	}
	p("UnaryCall -> OK in %v from server %q at %s, %d payload bytes",
		time.Since(start).Round(time.Microsecond), resp.GetServerId(), resp.GetHostname(), len(resp.GetPayload().GetBody()))
	p("echoed header %s=%q, trailer %s=%q", echoInitialKey, header.Get(echoInitialKey), echoTrailingKey, trailer.Get(echoTrailingKey))
	switch {
	case len(resp.GetPayload().GetBody()) != int(req.ResponseSize):
		return fmt.Errorf("payload has %d bytes, want %d", len(resp.GetPayload().GetBody()), req.ResponseSize)
	case resp.GetServerId() == "":
		return errors.New("response names no server id")
	case !equalOne(header.Get(echoInitialKey), "hello-header"):
		return fmt.Errorf("initial metadata %s = %q, want [\"hello-header\"]", echoInitialKey, header.Get(echoInitialKey))
	case !equalOne(trailer.Get(echoTrailingKey), "\x0a\x0b\x0c"):
		return fmt.Errorf("trailer %s = %q lost on the way: the proxy must pass trailers", echoTrailingKey, trailer.Get(echoTrailingKey))
	}
	return nil
}

// grpcServerStream asks for messages spaced streamInterval apart and checks
// they arrive spaced too: a proxy that buffered the stream would deliver them
// in one burst at the end.
func (c *checker) grpcServerStream(ctx context.Context, p printer) error {
	req := &testgrpc.StreamingOutputCallRequest{}
	for i := range streamMessages {
		req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{
			Size:       int32(16 * (i + 1)),
			IntervalUs: int32(streamInterval / time.Microsecond),
		})
	}
	start := time.Now()
	stream, err := testgrpc.NewTestServiceClient(c.grpc).StreamingOutputCall(ctx, req)
	if err != nil {
		return fmt.Errorf("StreamingOutputCall: %s", status.Convert(err))
	}
	var arrivals []time.Duration
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("message %d: %s", len(arrivals)+1, status.Convert(err))
		}
		at := time.Since(start)
		arrivals = append(arrivals, at)
		p("message %d: %3d bytes at +%v", len(arrivals), len(msg.GetPayload().GetBody()), at.Round(time.Millisecond))
		if want := int(req.ResponseParameters[min(len(arrivals), streamMessages)-1].Size); len(msg.GetPayload().GetBody()) != want {
			return fmt.Errorf("message %d has %d bytes, want %d", len(arrivals), len(msg.GetPayload().GetBody()), want)
		}
	}
	p("stream closed with OK after %v", time.Since(start).Round(time.Millisecond))
	if len(arrivals) != streamMessages {
		return fmt.Errorf("got %d messages, want %d", len(arrivals), streamMessages)
	}
	spread := arrivals[len(arrivals)-1] - arrivals[0]
	if want := (streamMessages - 1) * streamInterval / 2; spread < want {
		return fmt.Errorf("messages arrived within %v of each other, want at least %v: the proxy buffered the stream", spread, want)
	}
	return nil
}

// grpcNoRoute calls a service the route table does not send anywhere; the
// client must see a clean Unimplemented (HTTP 404 maps to it, and so does a
// gRPC-shaped local reply), not a hang or a broken connection.
func (c *checker) grpcNoRoute(ctx context.Context, p printer) error {
	_, err := healthpb.NewHealthClient(c.grpc).Check(ctx, &healthpb.HealthCheckRequest{})
	st := status.Convert(err)
	p("Health/Check -> %s: %q", st.Code(), st.Message())
	if st.Code() != codes.Unimplemented {
		return fmt.Errorf("code %s, want Unimplemented", st.Code())
	}
	return nil
}

func equalOne(got []string, want string) bool { return len(got) == 1 && got[0] == want }
