// Package backend is the bench's upstream: one port serving HTTP/1.1 and
// h2c (prior knowledge), another serving gRPC's grpc.testing.TestService,
// with a configurable response size and added latency. The harness runs it
// as a separate process with GOMAXPROCS=1 (`outrigger-bench backend`).
package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// MaxPayload bounds the response size a request may ask for.
const MaxPayload = 16 << 20

// Config says where the backend listens and how it answers.
type Config struct {
	// HTTPAddr and GRPCAddr are loopback host:port; port 0 picks one.
	HTTPAddr string
	GRPCAddr string
	// PayloadSize is the default response body size for a GET.
	PayloadSize int
	// Delay is added before every response: a stand-in for application work.
	Delay time.Duration
	// H3Addr, when set, also serves the HTTP handler over HTTP/3 (UDP) with
	// CertFile and KeyFile.
	H3Addr            string
	CertFile, KeyFile string
	// TCPSourceAddr, when set, is a raw TCP port that writes bytes to every
	// connection until the peer closes it (the bulk-transfer source).
	TCPSourceAddr string
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.HTTPAddr == "" || c.GRPCAddr == "" {
		return errors.New("backend: both HTTP and gRPC addresses are required")
	}
	if c.PayloadSize < 0 || c.PayloadSize > MaxPayload {
		return fmt.Errorf("backend: payload size %d out of range [0, %d]", c.PayloadSize, MaxPayload)
	}
	if c.Delay < 0 {
		return fmt.Errorf("backend: delay must not be negative, got %v", c.Delay)
	}
	if c.H3Addr != "" && (c.CertFile == "" || c.KeyFile == "") {
		return fmt.Errorf("backend: HTTP/3 on %s needs a certificate and key file", c.H3Addr)
	}
	return nil
}

// Server is a running backend. Close stops it and waits for its goroutines.
type Server struct {
	cfg      Config
	log      hclog.Logger
	httpLn   net.Listener
	grpcLn   net.Listener
	httpSrv  *http.Server
	grpcSrv  *grpc.Server
	h3       *h3Server
	tcpSrc   *tcpSource
	wg       sync.WaitGroup
	errMu    sync.Mutex
	serveErr error
}

// payload is shared, read-only response bytes.
var payload = make([]byte, MaxPayload)

// Start listens on both ports and serves until Close.
func Start(cfg Config, logger hclog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: logger.Named("backend")}
	var err error
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("backend: listen http: %w", err)
	}
	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		s.httpLn.Close()
		return nil, fmt.Errorf("backend: listen grpc: %w", err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	if err := s.startExtras(); err != nil {
		s.httpLn.Close()
		s.grpcLn.Close()
		return nil, err
	}
	s.grpcSrv = grpc.NewServer()
	testpb.RegisterTestServiceServer(s.grpcSrv, &testService{delay: cfg.Delay})

	s.wg.Go(func() {
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.setErr(fmt.Errorf("backend: serve http: %w", err))
		}
	})
	s.wg.Go(func() {
		if err := s.grpcSrv.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.setErr(fmt.Errorf("backend: serve grpc: %w", err))
		}
	})
	return s, nil
}

func (s *Server) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.serveErr == nil {
		s.serveErr = err
	}
}

// HTTPAddr is the bound HTTP/1.1 + h2c address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// Close stops both servers, waits for them and returns any serve error.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	herr := s.httpSrv.Shutdown(ctx)
	if herr != nil {
		herr = errors.Join(herr, s.httpSrv.Close())
	}
	stopped := make(chan struct{})
	go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpcSrv.Stop()
		<-stopped
	}
	xerr := s.closeExtras()
	s.wg.Wait()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return errors.Join(herr, xerr, s.serveErr)
}

// serveHTTP echoes a request body back; a request without one gets
// ?size=N bytes (default PayloadSize). ?delay=DURATION overrides Delay.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	delay := s.cfg.Delay
	size := s.cfg.PayloadSize
	if q := r.URL.RawQuery; q != "" {
		v := r.URL.Query()
		if d := v.Get("delay"); d != "" {
			pd, err := time.ParseDuration(d)
			if err != nil || pd < 0 {
				http.Error(w, "bad delay", http.StatusBadRequest)
				return
			}
			delay = pd
		}
		if n := v.Get("size"); n != "" {
			pn, err := strconv.Atoi(n)
			if err != nil || pn < 0 || pn > MaxPayload {
				http.Error(w, "bad size", http.StatusBadRequest)
				return
			}
			size = pn
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/octet-stream"}
	// An HTTP/3 GET has an unknown length (-1) and a non-nil body with
	// nothing in it: only a known length or a method with a body echoes.
	hasBody := r.ContentLength > 0 || (r.ContentLength < 0 && r.Method != http.MethodGet && r.Method != http.MethodHead)
	if hasBody && r.Body != nil && r.Body != http.NoBody {
		s.echo(w, r)
		return
	}
	h["Content-Length"] = []string{strconv.Itoa(size)}
	_, _ = w.Write(payload[:size])
}

// echo reads the whole body, then sends it back. Reading first keeps the
// exchange half duplex, which every proxy supports (net/http would refuse to
// read the body after the response started anyway).
func (s *Server) echo(w http.ResponseWriter, r *http.Request) {
	bp := echoBufs.Get().(*[]byte)
	defer echoBufs.Put(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	if _, err := io.Copy(buf, io.LimitReader(r.Body, MaxPayload+1)); err != nil {
		s.log.Debug("echo: read body", "error", err)
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if buf.Len() > MaxPayload {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	w.Header()["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	_, _ = w.Write(buf.Bytes())
	*bp = buf.Bytes()[:0] // keep a grown buffer for the next request
}

var echoBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 64<<10)
	return &b
}}

type testService struct {
	testpb.UnimplementedTestServiceServer
	delay time.Duration
}

func (t *testService) wait(ctx context.Context) error {
	if t.delay <= 0 {
		return nil
	}
	timer := time.NewTimer(t.delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := t.wait(ctx); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// FullDuplexCall answers every message on a long-lived stream with one
// message of the first response parameter's size (the streaming scenario's
// ping-pong), after the configured delay.
func (t *testService) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n := 0
		if ps := req.GetResponseParameters(); len(ps) > 0 {
			n = int(ps[0].GetSize())
		}
		if n < 0 || n > MaxPayload {
			return status.Errorf(codes.InvalidArgument, "response size %d out of range [0, %d]", n, MaxPayload)
		}
		if err := t.wait(stream.Context()); err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: payload[:n]}}); err != nil {
			return err
		}
	}
}

func (t *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := int(req.GetResponseSize())
	if n < 0 || n > MaxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "response size %d out of range [0, %d]", n, MaxPayload)
	}
	if err := t.wait(ctx); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: payload[:n]}}, nil
}
