package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// startApp serves the app on a loopback port and returns a client connection
// to it; both are torn down when the test ends.
func startApp(t *testing.T) (*grpc.ClientConn, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, "grpcapp", hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, addr
}

func TestUnary(t *testing.T) {
	cc, addr := startApp(t)
	client := testgrpc.NewTestServiceClient(cc)

	tests := []struct {
		name     string
		req      *testgrpc.SimpleRequest
		wantCode codes.Code
		wantID   string
		wantSize int
	}{
		{name: "payload and server id", req: &testgrpc.SimpleRequest{ResponseSize: 100, FillServerId: true}, wantID: "grpcapp", wantSize: 100},
		{name: "no server id unless asked", req: &testgrpc.SimpleRequest{ResponseSize: 1}, wantSize: 1},
		{name: "echoed status", req: &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "asked for"}}, wantCode: codes.ResourceExhausted},
		{name: "negative size", req: &testgrpc.SimpleRequest{ResponseSize: -1}, wantCode: codes.InvalidArgument},
		{name: "oversized", req: &testgrpc.SimpleRequest{ResponseSize: maxPayload + 1}, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, echoInitialKey, "hi", echoTrailingKey, "\x00\x01")
			var header, trailer metadata.MD
			resp, err := client.UnaryCall(ctx, tt.req, grpc.Header(&header), grpc.Trailer(&trailer))
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if got := header.Get(echoInitialKey); len(got) != 1 || got[0] != "hi" {
				t.Errorf("echoed header = %q", got)
			}
			if got := trailer.Get(echoTrailingKey); len(got) != 1 || got[0] != "\x00\x01" {
				t.Errorf("echoed trailer = %q", got)
			}
			if tt.wantCode != codes.OK {
				return
			}
			if len(resp.GetPayload().GetBody()) != tt.wantSize || resp.GetServerId() != tt.wantID || resp.GetHostname() != addr {
				t.Errorf("response: %d bytes, server id %q, hostname %q", len(resp.GetPayload().GetBody()), resp.GetServerId(), resp.GetHostname())
			}
		})
	}
}

func TestOtherMethods(t *testing.T) {
	cc, _ := startApp(t)
	client := testgrpc.NewTestServiceClient(cc)
	params := []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2, IntervalUs: 1000}, {Size: 3}}

	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{name: "empty", call: func(ctx context.Context) error {
			_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
			return err
		}},
		{name: "cacheable unary sets cache-control", call: func(ctx context.Context) error {
			var header metadata.MD
			if _, err := client.CacheableUnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header)); err != nil {
				return err
			}
			if got := header.Get("cache-control"); len(got) != 1 {
				return errors.New("no cache-control header")
			}
			return nil
		}},
		{name: "server streaming", call: func(ctx context.Context) error {
			stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
			if err != nil {
				return err
			}
			return readAll(stream.Recv, 1, 2, 3)
		}},
		{name: "server streaming ends with requested status", call: func(ctx context.Context) error {
			stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
				ResponseParameters: params[:1],
				ResponseStatus:     &testgrpc.EchoStatus{Code: int32(codes.Aborted), Message: "bye"},
			})
			if err != nil {
				return err
			}
			if _, err := stream.Recv(); err != nil {
				return err
			}
			if _, err := stream.Recv(); status.Code(err) != codes.Aborted {
				return errors.New("want Aborted after the messages, got " + status.Convert(err).String())
			}
			return nil
		}},
		{name: "client streaming", call: func(ctx context.Context) error {
			stream, err := client.StreamingInputCall(ctx)
			if err != nil {
				return err
			}
			for _, n := range []int{10, 20, 30} {
				if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
					return err
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return err
			}
			if resp.GetAggregatedPayloadSize() != 60 {
				return errors.New("aggregated size is not 60")
			}
			return nil
		}},
		{name: "full duplex answers each request", call: func(ctx context.Context) error {
			stream, err := client.FullDuplexCall(ctx)
			if err != nil {
				return err
			}
			for _, p := range params {
				if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{p}}); err != nil {
					return err
				}
				// Answered before the next request is sent: truly duplex.
				if err := readSizes(stream.Recv, int(p.GetSize())); err != nil {
					return err
				}
			}
			if err := stream.CloseSend(); err != nil {
				return err
			}
			return readAll(stream.Recv)
		}},
		{name: "half duplex answers after half close", call: func(ctx context.Context) error {
			stream, err := client.HalfDuplexCall(ctx)
			if err != nil {
				return err
			}
			for _, p := range params {
				if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{p}}); err != nil {
					return err
				}
			}
			if err := stream.CloseSend(); err != nil {
				return err
			}
			return readAll(stream.Recv, 1, 2, 3)
		}},
		{name: "unimplemented call", call: func(ctx context.Context) error {
			_, err := client.UnimplementedCall(ctx, &testgrpc.Empty{})
			if status.Code(err) != codes.Unimplemented {
				return errors.New("want Unimplemented, got " + status.Convert(err).String())
			}
			return nil
		}},
		{name: "health", call: func(ctx context.Context) error {
			for _, svc := range []string{"", "grpc.testing.TestService"} {
				resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					return err
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					return errors.New("service " + svc + " is " + resp.GetStatus().String())
				}
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tt.call(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// readSizes reads one message per size and checks each payload's size.
func readSizes(recv func() (*testgrpc.StreamingOutputCallResponse, error), sizes ...int) error {
	for i, want := range sizes {
		msg, err := recv()
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if got := len(msg.GetPayload().GetBody()); got != want {
			return fmt.Errorf("message %d has %d bytes, want %d", i, got, want)
		}
	}
	return nil
}

// readAll reads the given sizes and then expects the stream to end cleanly.
func readAll(recv func() (*testgrpc.StreamingOutputCallResponse, error), sizes ...int) error {
	if err := readSizes(recv, sizes...); err != nil {
		return err
	}
	if _, err := recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("want end of stream, got %v", err)
	}
	return nil
}
