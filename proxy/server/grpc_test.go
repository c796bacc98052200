package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// testService is grpc-go's interop TestService with trailers on every call.
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "empty"))
	return &testpb.Empty{}, nil
}

func (testService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if in.GetResponseStatus() != nil {
		return nil, status.Error(codes.Code(in.GetResponseStatus().GetCode()), in.GetResponseStatus().GetMessage())
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-sleep")) > 0 {
		d, _ := time.ParseDuration(md.Get("x-sleep")[0])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, in.GetResponseSize())}}, nil
}

func (testService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
	for _, p := range in.GetResponseParameters() {
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	s.SetTrailer(metadata.Pairs("x-trailer", "server-stream"))
	return nil
}

func (testService) StreamingInputCall(s testpb.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return s.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(m.GetPayload().GetBody())
	}
}

func (testService) FullDuplexCall(s testpb.TestService_FullDuplexCallServer) error {
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			s.SetTrailer(metadata.Pairs("x-trailer", "bidi"))
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range m.GetResponseParameters() {
			if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

func grpcBackend(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, testService{})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func grpcProxy(t *testing.T, upstream string) *proxy {
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
`
	return startProxy(t, bs{VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, upstream)}.String())
}

func grpcClient(t *testing.T, addr string) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func TestGRPCThroughProxy(t *testing.T) {
	p := grpcProxy(t, grpcBackend(t))
	c := grpcClient(t, p.addr["ingress"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary with trailers", func(t *testing.T) {
		var tr metadata.MD
		resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1000}, grpc.Trailer(&tr))
		must(t, err)
		if len(resp.GetPayload().GetBody()) != 1000 {
			t.Errorf("payload %d bytes", len(resp.GetPayload().GetBody()))
		}
		if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("trailer %v", tr)
		}
	})
	t.Run("status from upstream", func(t *testing.T) {
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "nope"}})
		if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "nope" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 20000}, {Size: 30}},
		})
		must(t, err)
		var sizes []int
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			must(t, err)
			sizes = append(sizes, len(m.GetPayload().GetBody()))
		}
		if len(sizes) != 3 || sizes[1] != 20000 {
			t.Errorf("sizes %v", sizes)
		}
		if got := st.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "server-stream" {
			t.Errorf("trailer %v", st.Trailer())
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		st, err := c.StreamingInputCall(ctx)
		must(t, err)
		for i := 0; i < 20; i++ {
			must(t, st.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 1000)}}))
		}
		resp, err := st.CloseAndRecv()
		must(t, err)
		if resp.GetAggregatedPayloadSize() != 20000 {
			t.Errorf("aggregated %d", resp.GetAggregatedPayloadSize())
		}
	})
	t.Run("bidi streaming frame by frame", func(t *testing.T) {
		st, err := c.FullDuplexCall(ctx)
		must(t, err)
		// Ping-pong: each reply must arrive before the next request is
		// sent, which only works if the proxy flushes every frame.
		for i := 1; i <= 10; i++ {
			must(t, st.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i)}}}))
			m, err := st.Recv()
			must(t, err)
			if len(m.GetPayload().GetBody()) != i {
				t.Fatalf("reply %d has %d bytes", i, len(m.GetPayload().GetBody()))
			}
		}
		must(t, st.CloseSend())
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end: %v", err)
		}
		if got := st.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "bidi" {
			t.Errorf("trailer %v", st.Trailer())
		}
	})
	t.Run("grpc-timeout honoured", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-sleep", "3s"), 300*time.Millisecond)
		defer dcancel()
		start := time.Now()
		_, err := c.UnaryCall(dctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

func TestGRPCErrorsAreGRPCShaped(t *testing.T) {
	dead := freeAddr(t)
	p := grpcProxy(t, dead)
	c := grpcClient(t, p.addr["ingress"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.EmptyCall(ctx, &testpb.Empty{})
	s := status.Convert(err)
	if s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "upstream connect error") {
		t.Errorf("dead upstream: %v, want UNAVAILABLE from the proxy", err)
	}
}

// samplePeakHeap records the largest HeapInuse seen until stop closes.
func samplePeakHeap(peak *atomic.Uint64, stop <-chan struct{}) {
	var ms runtime.MemStats
	for {
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
