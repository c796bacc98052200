package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The gRPC-Web tests run two clients through the proxy to a real grpc-go
// backend: the official gRPC-Web JS library (grpc-web on npm, what
// browsers load) under node, and a small Go client written from the
// protocol spec (grpc/grpc doc/PROTOCOL-WEB.md) for what the JS library
// does not let a test see: exact headers, the bytes of the body, HTTP/2
// downstream, and requests a real client would not send.

// webService is the interop TestService with what the gRPC-Web tests need
// on top: UnaryCall echoes the x-echo metadata as a response header, and
// StreamingOutputCall can wait for the test after its first message
// (x-gate metadata) and end with the requested status after its messages.
type webService struct {
	testService
	gate chan struct{}
	srv  *grpc.Server
}

func (s *webService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-echo")) > 0 {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-echo", md.Get("x-echo")[0]))
	}
	return s.testService.UnaryCall(ctx, in)
}

func (s *webService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	for i, p := range in.GetResponseParameters() {
		if i == 1 && len(md.Get("x-gate")) > 0 {
			select {
			case <-s.gate:
			case <-st.Context().Done():
				return st.Context().Err()
			case <-time.After(10 * time.Second):
				return status.Error(codes.DeadlineExceeded, "the test never saw the first message: not flushed")
			}
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	if rs := in.GetResponseStatus(); rs != nil {
		return status.Error(codes.Code(rs.GetCode()), rs.GetMessage())
	}
	st.SetTrailer(metadata.Pairs("x-trailer", "server-stream"))
	return nil
}

func webBackend(t *testing.T) (string, *webService) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := grpc.NewServer()
	svc := &webService{gate: make(chan struct{}, 1), srv: s}
	testpb.RegisterTestServiceServer(s, svc)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String(), svc
}

// plainBackend answers /plain/echo with what it received and /plain/503
// with a plain-text error.
func plainBackend(t *testing.T) string {
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/plain/503" {
			http.Error(w, "backend overloaded", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Got-Content-Type", r.Header.Get("Content-Type"))
		w.Header().Set("X-Got-Te", r.Header.Get("Te"))
		w.Header().Set("X-Got-Grpc-Accept-Encoding", r.Header.Get("Grpc-Accept-Encoding"))
		w.Header().Set("X-Got-Content-Length", fmt.Sprint(r.ContentLength))
		w.Write(body)
	}))
}

const grpcWebFilter = `          - name: envoy.filters.http.grpc_web
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb
`

// faultFilter aborts requests carrying x-fault with 503.
const faultFilter = `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {http_status: 503, percentage: {numerator: 100}}
              headers: [{name: x-fault, present_match: true}]
`

// webProxy runs a proxy with filters before the router, routing the
// TestService to grpcAddr (h2c), /dead/ to a closed port, /plain/ to an
// HTTP backend, /direct to a direct response, and /grpcmatch/ only for
// gRPC requests.
func webProxy(t *testing.T, filters, grpcAddr, plainAddr string) *proxy {
	t.Helper()
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/grpcmatch/", grpc: {}}
                  route: {cluster: grpc}
                - match: {prefix: "/grpc.testing.TestService/"}
                  route: {cluster: grpc, timeout: 0s}
                - match: {prefix: "/dead/"}
                  route: {cluster: dead}
                - match: {prefix: "/plain/"}
                  route: {cluster: plain}
                - match: {prefix: "/direct"}
                  direct_response: {status: 403, body: {inline_string: "go away"}}
`
	clusters := staticCluster("grpc", h2cOptions, grpcAddr) +
		staticCluster("dead", h2cOptions, freeAddr(t)) +
		staticCluster("plain", "", plainAddr)
	return startProxy(t, bs{Filters: filters, VirtualHosts: vh, Clusters: clusters}.String())
}

// --- the official JS client ----------------------------------------------

// jsClientDir installs the JS client's packages (pinned by
// testdata/grpcweb/package-lock.json) once per lock file into the user
// cache and returns the node_modules directory. The test is skipped only
// when node itself is missing.
func jsClientDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the gRPC-Web JS client cannot run")
	}
	lock, err := os.ReadFile("testdata/grpcweb/package-lock.json")
	must(t, err)
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	must(t, err)
	dir := filepath.Join(cache, "outrigger", "grpc-web-js-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "grpc-web", "package.json")); err == nil {
		return modules
	}
	must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "grpc-web-js-install-")
	must(t, err)
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/grpcweb", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(tmp, f), b, 0o644))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci for the gRPC-Web JS client: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process got there first.
		if _, serr := os.Stat(filepath.Join(modules, "grpc-web", "package.json")); serr != nil {
			t.Fatalf("install the JS client into %s: %v", dir, err)
		}
	}
	return modules
}

type jsJob struct {
	URL    string   `json:"url"`
	Format string   `json:"format"`
	Calls  []jsCall `json:"calls"`
}

type jsCall struct {
	Method   string            `json:"method"`
	Type     string            `json:"type"` // unary, server_streaming
	Request  []byte            `json:"request"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type jsEvent struct {
	Call     int               `json:"call"`
	Event    string            `json:"event"` // metadata, data, status, error, end
	Data     []byte            `json:"data"`
	Code     int               `json:"code"`
	Details  string            `json:"details"`
	Message  string            `json:"message"`
	Metadata map[string]string `json:"metadata"`
}

// runJS starts testdata/grpcweb/client.js on job and streams its events;
// the channel closes when node exits. node is killed at the end of the
// test or after a minute.
func runJS(t *testing.T, modules string, job jsJob) <-chan jsEvent {
	t.Helper()
	in, err := json.Marshal(job)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, "node", "testdata/grpcweb/client.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	ch := make(chan jsEvent, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var e jsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("node printed %q: %v", sc.Text(), err)
				continue
			}
			ch <- e
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("node: %v\n%s", err, stderr.String())
		}
	}()
	t.Cleanup(func() {
		// node exits by itself after its last call; kill it only if not.
		grace := time.After(10 * time.Second)
		for open := true; open; {
			select {
			case _, open = <-ch:
			case <-grace:
				cancel()
				grace = nil
			}
		}
		<-done
		cancel()
	})
	return ch
}

// jsResult is one call's events, gathered.
type jsResult struct {
	header   map[string]string
	messages [][]byte
	status   *jsEvent
	err      *jsEvent
}

func collectJS(t *testing.T, ch <-chan jsEvent, calls int) []jsResult {
	t.Helper()
	res := make([]jsResult, calls)
	ended := 0
	timeout := time.After(30 * time.Second)
	for ended < calls {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("node exited after %d of %d calls", ended, calls)
			}
			r := &res[e.Call]
			switch e.Event {
			case "metadata":
				r.header = e.Metadata
			case "data":
				r.messages = append(r.messages, e.Data)
			case "status":
				r.status = &e
			case "error":
				r.err = &e
			case "end":
				ended++
			}
		case <-timeout:
			t.Fatalf("timed out after %d of %d calls", ended, calls)
		}
	}
	return res
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	must(t, err)
	return b
}

func TestGRPCWebJSClient(t *testing.T) {
	modules := jsClientDir(t)
	grpcAddr, svc := webBackend(t)
	p := webProxy(t, grpcWebFilter, grpcAddr, plainBackend(t))
	url := "http://" + p.addr["ingress"]
	const (
		unary  = "/grpc.testing.TestService/UnaryCall"
		stream = "/grpc.testing.TestService/StreamingOutputCall"
	)
	for _, format := range []string{"text", "binary"} {
		t.Run(format, func(t *testing.T) {
			calls := []jsCall{
				{Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{ResponseSize: 1000}), Metadata: map[string]string{"x-echo": "hi"}},
				{Method: unary, Type: "unary", Request: marshal(t, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing"}})},
				{Method: stream, Type: "server_streaming", Request: marshal(t, &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 20000}, {Size: 0}, {Size: 30}},
				})},
				{Method: stream, Type: "server_streaming", Request: marshal(t, &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{Size: 5}, {Size: 6}},
					ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "quota gone"},
				})},
				{Method: "/dead/grpc.testing.TestService/UnaryCall", Type: "unary", Request: marshal(t, &testpb.SimpleRequest{})},
				{Method: "/grpcmatch/grpc.testing.TestService/UnaryCall", Type: "unary", Request: marshal(t, &testpb.SimpleRequest{})},
			}
			res := collectJS(t, runJS(t, modules, jsJob{URL: url, Format: format, Calls: calls}), len(calls))

			t.Run("unary", func(t *testing.T) {
				r := res[0]
				if r.err != nil || len(r.messages) != 1 {
					t.Fatalf("err %+v, %d messages", r.err, len(r.messages))
				}
				var m testpb.SimpleResponse
				must(t, proto.Unmarshal(r.messages[0], &m))
				if len(m.GetPayload().GetBody()) != 1000 {
					t.Errorf("payload %d bytes", len(m.GetPayload().GetBody()))
				}
				if r.header["x-echo"] != "hi" {
					t.Errorf("response metadata %v", r.header)
				}
				if r.status == nil || r.status.Code != 0 || r.status.Metadata["x-trailer"] != "unary" {
					t.Errorf("status %+v", r.status)
				}
			})
			t.Run("error status from the backend", func(t *testing.T) {
				r := res[1]
				if r.err == nil || r.err.Code != int(codes.NotFound) || r.err.Message != "no such thing" || len(r.messages) != 0 {
					t.Errorf("err %+v, %d messages", r.err, len(r.messages))
				}
			})
			t.Run("server streaming", func(t *testing.T) {
				r := res[2]
				var sizes []int
				for _, b := range r.messages {
					var m testpb.StreamingOutputCallResponse
					must(t, proto.Unmarshal(b, &m))
					sizes = append(sizes, len(m.GetPayload().GetBody()))
				}
				if r.err != nil || fmt.Sprint(sizes) != "[10 20000 0 30]" {
					t.Errorf("err %+v, sizes %v", r.err, sizes)
				}
				if r.status == nil || r.status.Code != 0 || r.status.Metadata["x-trailer"] != "server-stream" {
					t.Errorf("status %+v", r.status)
				}
			})
			t.Run("error after messages", func(t *testing.T) {
				r := res[3]
				if len(r.messages) != 2 || r.err == nil || r.err.Code != int(codes.ResourceExhausted) || r.err.Message != "quota gone" {
					t.Errorf("%d messages, err %+v", len(r.messages), r.err)
				}
			})
			t.Run("dead backend", func(t *testing.T) {
				r := res[4]
				if r.err == nil || r.err.Code != int(codes.Unavailable) || !strings.Contains(r.err.Message, "upstream connect error") {
					t.Errorf("err %+v", r.err)
				}
			})
			t.Run("grpc route matcher does not see gRPC-Web", func(t *testing.T) {
				r := res[5]
				if r.err == nil || r.err.Code != int(codes.Unimplemented) || r.err.Message != "route not found" {
					t.Errorf("err %+v", r.err)
				}
			})
		})
	}

	// A stream's first message reaches the client while the backend is
	// still holding the second: the proxy flushes each message. Text mode
	// only: in binary mode the library reads an arraybuffer, which XHR
	// hands over when the response is complete (grpc-web supports only
	// unary calls in that mode; TestGRPCWebWire checks that binary streams
	// flow too).
	for _, format := range []string{"text"} {
		t.Run(format+" stream flows", func(t *testing.T) {
			ch := runJS(t, modules, jsJob{URL: url, Format: format, Calls: []jsCall{{
				Method: stream, Type: "server_streaming", Metadata: map[string]string{"x-gate": "1"},
				Request: marshal(t, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 7}, {Size: 8}}}),
			}}})
			var sizes []int
			timeout := time.After(30 * time.Second)
			for ended := false; !ended; {
				select {
				case e, ok := <-ch:
					if !ok {
						t.Fatal("node exited early")
					}
					switch e.Event {
					case "data":
						sizes = append(sizes, len(e.Data))
						if len(sizes) == 1 {
							svc.gate <- struct{}{}
						}
					case "error":
						t.Fatalf("error %+v", e)
					case "end":
						ended = true
					}
				case <-timeout:
					t.Fatal("timed out")
				}
			}
			// Payload{Body: 7 bytes} marshals to 11 bytes, 8 to 12.
			if fmt.Sprint(sizes) != "[11 12]" {
				t.Errorf("message sizes %v", sizes)
			}
		})
	}
}

// --- a minimal Go client, from the spec ----------------------------------

// webResponse is a gRPC-Web response taken apart.
type webResponse struct {
	status   int
	header   http.Header
	trailer  http.Header // HTTP trailers: gRPC-Web has none
	raw      []byte      // the body as sent
	messages [][]byte
	trailers map[string]string // the trailer frame
}

// webRequest builds a gRPC-Web request for one message.
func webRequest(t *testing.T, url string, text bool, msg []byte) *http.Request {
	t.Helper()
	body := grpcFrame(0, msg)
	ct := "application/grpc-web+proto"
	if text {
		body = []byte(base64.StdEncoding.EncodeToString(body))
		ct = "application/grpc-web-text"
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", ct)
	if text {
		req.Header.Set("Accept", "application/grpc-web-text")
	}
	req.Header.Set("X-Grpc-Web", "1")
	req.Header.Set("X-User-Agent", "grpc-web-go-test/1.0")
	return req
}

func webCall(t *testing.T, c *http.Client, req *http.Request) *webResponse {
	t.Helper()
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	must(t, err)
	w := &webResponse{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, raw: raw}
	text := resp.Header.Get("Content-Type") == "application/grpc-web-text+proto"
	s := &webStream{r: bufio.NewReader(bytes.NewReader(raw)), text: text}
	for {
		flags, payload, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		if flags&0x80 != 0 {
			if w.trailers != nil {
				t.Fatalf("a second trailer frame")
			}
			w.trailers = parseTrailerFrame(t, payload)
			continue
		}
		if w.trailers != nil {
			t.Fatalf("a message after the trailer frame")
		}
		w.messages = append(w.messages, payload)
	}
	return w
}

// webStream reads frames as they arrive; in text mode it decodes the body
// group by group, as browser clients do (padding may end any group).
type webStream struct {
	r    *bufio.Reader
	text bool
	buf  []byte
}

func (s *webStream) fill(n int) error {
	for len(s.buf) < n {
		if !s.text {
			b := make([]byte, n-len(s.buf))
			k, err := io.ReadFull(s.r, b)
			s.buf = append(s.buf, b[:k]...)
			if err != nil {
				return err
			}
			continue
		}
		var g [4]byte
		if _, err := io.ReadFull(s.r, g[:]); err != nil {
			return err
		}
		d, err := base64.StdEncoding.DecodeString(string(g[:]))
		if err != nil {
			return fmt.Errorf("text body: %w", err)
		}
		s.buf = append(s.buf, d...)
	}
	return nil
}

func (s *webStream) next() (byte, []byte, error) {
	if err := s.fill(5); err != nil {
		if len(s.buf) == 0 && errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("frame header: %w", err)
	}
	n := 5 + int(binary.BigEndian.Uint32(s.buf[1:5]))
	if err := s.fill(n); err != nil {
		return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, err)
	}
	flags, payload := s.buf[0], append([]byte(nil), s.buf[5:n]...)
	s.buf = s.buf[n:]
	return flags, payload, nil
}

func parseTrailerFrame(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\r\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != strings.ToLower(k) {
			t.Fatalf("trailer line %q", line)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m
}

func grpcFrame(flags byte, payload []byte) []byte {
	f := make([]byte, 5, 5+len(payload))
	f[0] = flags
	binary.BigEndian.PutUint32(f[1:], uint32(len(payload)))
	return append(f, payload...)
}

func TestGRPCWebWire(t *testing.T) {
	grpcAddr, svc := webBackend(t)
	p := webProxy(t, grpcWebFilter, grpcAddr, plainBackend(t))
	base := "http://" + p.addr["ingress"]
	unary := base + "/grpc.testing.TestService/UnaryCall"
	stream := base + "/grpc.testing.TestService/StreamingOutputCall"

	clients := []struct {
		name string
		c    *http.Client
	}{{"h1", h1Client()}, {"h2c", h2cClient()}}
	for _, c := range clients {
		t.Cleanup(c.c.CloseIdleConnections) // before the proxy stops: no drain wait
	}
	for _, client := range clients {
		for _, text := range []bool{false, true} {
			mode := map[bool]string{false: "binary", true: "text"}[text]
			wantCT := map[bool]string{false: "application/grpc-web+proto", true: "application/grpc-web-text+proto"}[text]
			c := client.c
			t.Run(client.name+" "+mode, func(t *testing.T) {
				t.Run("unary", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, unary, text, marshal(t, &testpb.SimpleRequest{ResponseSize: 3000})))
					if r.status != 200 || r.header.Get("Content-Type") != wantCT || r.header.Get("Content-Length") != "" || r.header.Get("Trailer") != "" || len(r.trailer) != 0 {
						t.Errorf("status %d, headers %v, HTTP trailers %v", r.status, r.header, r.trailer)
					}
					if len(r.messages) != 1 || r.trailers["grpc-status"] != "0" || r.trailers["x-trailer"] != "unary" {
						t.Fatalf("%d messages, trailers %v", len(r.messages), r.trailers)
					}
					var m testpb.SimpleResponse
					must(t, proto.Unmarshal(r.messages[0], &m))
					if len(m.GetPayload().GetBody()) != 3000 {
						t.Errorf("payload %d bytes", len(m.GetPayload().GetBody()))
					}
					if text {
						// Each frame is encoded and padded on its own, as Envoy sends it.
						want := base64.StdEncoding.EncodeToString(grpcFrame(0, r.messages[0]))
						if !strings.HasPrefix(string(r.raw), want) {
							t.Errorf("the message frame is not encoded on its own")
						}
					}
				})
				t.Run("trailers-only error", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, unary, text, marshal(t, &testpb.SimpleRequest{
						ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "nope: 100%"}})))
					if r.status != 200 || r.header.Get("Grpc-Status") != "7" || r.header.Get("Grpc-Message") != "nope: 100%25" ||
						r.header.Get("Content-Type") != wantCT || len(r.raw) != 0 {
						t.Errorf("status %d, headers %v, body %q", r.status, r.header, r.raw)
					}
				})
				t.Run("server stream flows message by message", func(t *testing.T) {
					req := webRequest(t, stream, text, marshal(t, &testpb.StreamingOutputCallRequest{
						ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 40000}},
					}))
					req.Header.Set("X-Gate", "1")
					resp, err := c.Do(req)
					must(t, err)
					defer resp.Body.Close()
					s := &webStream{r: bufio.NewReader(resp.Body), text: text}
					if _, payload, err := s.next(); err != nil || len(payload) != 5 {
						t.Fatalf("first message: %d bytes, %v", len(payload), err)
					}
					svc.gate <- struct{}{} // only now may the backend go on
					if _, payload, err := s.next(); err != nil || len(payload) != 40008 {
						t.Fatalf("second message: %d bytes, %v", len(payload), err)
					}
					flags, payload, err := s.next()
					if err != nil || flags != 0x80 || !strings.Contains(string(payload), "grpc-status:0\r\n") {
						t.Fatalf("trailer frame %x %q %v", flags, payload, err)
					}
					if _, _, err := s.next(); !errors.Is(err, io.EOF) {
						t.Fatalf("after the trailer frame: %v", err)
					}
				})
				t.Run("dead backend", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, base+"/dead/x.Y/Z", text, nil))
					if r.status != 200 || r.header.Get("Grpc-Status") != "14" || !strings.Contains(r.header.Get("Grpc-Message"), "upstream connect error") ||
						r.header.Get("Content-Type") != wantCT || len(r.raw) != 0 {
						t.Errorf("status %d, headers %v, body %q", r.status, r.header, r.raw)
					}
				})
				t.Run("no route", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, base+"/nowhere.S/M", text, nil))
					if r.status != 200 || r.header.Get("Grpc-Status") != "12" || r.header.Get("Grpc-Message") != "route not found" || r.header.Get("Content-Type") != wantCT {
						t.Errorf("status %d, headers %v", r.status, r.header)
					}
				})
				t.Run("a response that is not gRPC", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, base+"/plain/503", text, nil))
					if r.status != 503 || r.header.Get("Grpc-Status") != "14" || r.header.Get("Grpc-Message") != "backend overloaded%0A" ||
						r.header.Get("Content-Type") != wantCT || len(r.raw) != 0 {
						t.Errorf("status %d, headers %v, body %q", r.status, r.header, r.raw)
					}
				})
				t.Run("direct response", func(t *testing.T) {
					r := webCall(t, c, webRequest(t, base+"/direct", text, nil))
					if r.status != 403 || r.header.Get("Grpc-Status") != "7" || r.header.Get("Grpc-Message") != "go away" || len(r.raw) != 0 {
						t.Errorf("status %d, headers %v, body %q", r.status, r.header, r.raw)
					}
				})
			})
		}
		t.Run(client.name+" text request that is not base64", func(t *testing.T) {
			req, err := http.NewRequest("POST", unary, strings.NewReader("AAAA!!!!"))
			must(t, err)
			req.Header.Set("Content-Type", "application/grpc-web-text")
			r := webCall(t, client.c, req)
			if r.status != 200 || r.header.Get("Grpc-Status") != "13" || r.header.Get("Content-Type") != "application/grpc-web+proto" {
				t.Errorf("status %d, headers %v, body %q", r.status, r.header, r.raw)
			}
		})
	}
	t.Run("text request, binary response without Accept", func(t *testing.T) {
		req := webRequest(t, unary, true, marshal(t, &testpb.SimpleRequest{ResponseSize: 10}))
		req.Header.Del("Accept")
		r := webCall(t, h1Client(), req)
		if r.header.Get("Content-Type") != "application/grpc-web+proto" || len(r.messages) != 1 || r.trailers["grpc-status"] != "0" {
			t.Errorf("headers %v, %d messages, trailers %v", r.header, len(r.messages), r.trailers)
		}
	})
}

// TestGRPCWebUpstreamResetMidStream: when the backend goes away in the
// middle of a stream, the client's stream fails (reset, or a chunked body
// cut short) instead of ending as if it were whole, and nothing hangs.
func TestGRPCWebUpstreamResetMidStream(t *testing.T) {
	plain := plainBackend(t)
	for _, client := range []struct {
		name string
		c    func() *http.Client
	}{{"h1", h1Client}, {"h2c", h2cClient}} {
		for _, text := range []bool{false, true} {
			t.Run(client.name+map[bool]string{false: " binary", true: " text"}[text], func(t *testing.T) {
				grpcAddr, svc := webBackend(t)
				p := webProxy(t, grpcWebFilter, grpcAddr, plain)
				c := client.c()
				t.Cleanup(c.CloseIdleConnections) // before the proxy stops: no drain wait
				req := webRequest(t, "http://"+p.addr["ingress"]+"/grpc.testing.TestService/StreamingOutputCall", text,
					marshal(t, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}}}))
				req.Header.Set("X-Gate", "1")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := c.Do(req.WithContext(ctx))
				must(t, err)
				defer resp.Body.Close()
				s := &webStream{r: bufio.NewReader(resp.Body), text: text}
				if _, payload, err := s.next(); err != nil || len(payload) != 5 {
					t.Fatalf("first message: %d bytes, %v", len(payload), err)
				}
				svc.srv.Stop() // closes the connection mid-stream
				flags, payload, err := s.next()
				if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
					t.Fatalf("after the reset: frame %x %q, error %v (context %v)", flags, payload, err, ctx.Err())
				}
			})
		}
	}
}

// TestGRPCWebLeavesOtherRequestsAlone: with the filter in the chain, a
// request that is not gRPC-Web reaches the backend as sent, and native
// gRPC still works.
func TestGRPCWebLeavesOtherRequestsAlone(t *testing.T) {
	grpcAddr, _ := webBackend(t)
	p := webProxy(t, grpcWebFilter, grpcAddr, plainBackend(t))
	base := "http://" + p.addr["ingress"]

	req, err := http.NewRequest("POST", base+"/plain/echo", strings.NewReader(`{"a":1}`))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h1Client().Do(req)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"a":1}` || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("X-Got-Content-Type") != "application/json" || resp.Header.Get("X-Got-Te") != "" ||
		resp.Header.Get("X-Got-Grpc-Accept-Encoding") != "" || resp.Header.Get("X-Got-Content-Length") != "7" || resp.Header.Get("Grpc-Status") != "" {
		t.Errorf("status %d, headers %v, body %q", resp.StatusCode, resp.Header, body)
	}

	c := grpcClient(t, p.addr["ingress"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tr metadata.MD
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10}, grpc.Trailer(&tr)); err != nil || tr.Get("x-trailer")[0] != "unary" {
		t.Errorf("native gRPC: %v, trailers %v", err, tr)
	}
	// The grpc route matcher matches native gRPC (the backend, not the
	// proxy, answers that it has no such service).
	cc, err := grpc.NewClient(p.addr["ingress"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer cc.Close()
	err = cc.Invoke(ctx, "/grpcmatch/grpc.testing.TestService/EmptyCall", &testpb.Empty{}, &testpb.Empty{})
	if s := status.Convert(err); s.Code() != codes.Unimplemented || !strings.Contains(s.Message(), "unknown service grpcmatch") {
		t.Errorf("native gRPC on the grpc route: %v", err)
	}
}

// TestGRPCWebFaultOrder: a fault filter listed after grpc_web answers a
// gRPC-Web request in gRPC-Web; one listed before it answers in plain HTTP,
// as Envoy does (the grpc_web filter has not seen the request yet).
func TestGRPCWebFaultOrder(t *testing.T) {
	grpcAddr, _ := webBackend(t)
	plain := plainBackend(t)
	for _, tc := range []struct {
		name    string
		filters string
		status  int
		grpc    string
		ct      string
	}{
		{"fault after grpc_web", grpcWebFilter + faultFilter, 200, "14", "application/grpc-web+proto"},
		{"fault before grpc_web", faultFilter + grpcWebFilter, 503, "", "text/plain; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webProxy(t, tc.filters, grpcAddr, plain)
			req := webRequest(t, "http://"+p.addr["ingress"]+"/grpc.testing.TestService/EmptyCall", false, nil)
			req.Header.Set("X-Fault", "1")
			resp, err := h1Client().Do(req)
			must(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Grpc-Status") != tc.grpc || resp.Header.Get("Content-Type") != tc.ct {
				t.Errorf("status %d, headers %v, body %q", resp.StatusCode, resp.Header, body)
			}
			// Without the fault the call goes through either way.
			r := webCall(t, h1Client(), webRequest(t, "http://"+p.addr["ingress"]+"/grpc.testing.TestService/EmptyCall", true, nil))
			if r.trailers["grpc-status"] != "0" || len(r.messages) != 1 {
				t.Errorf("without the fault: %d messages, trailers %v, headers %v", len(r.messages), r.trailers, r.header)
			}
		})
	}
}

// BenchmarkProxyHTTP1GRPCWebFilter is BenchmarkProxyHTTP1 with the
// grpc_web filter in the chain: a request that is not gRPC-Web should cost
// the same (compare allocs/op).
func BenchmarkProxyHTTP1GRPCWebFilter(b *testing.B) {
	t := &testing.T{}
	p := startProxy(t, bs{Filters: grpcWebFilter, VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", tinyBackend(b))}.String())
	b.Cleanup(func() { p.stop(t) })
	benchGet(b, h1Client(), "http://"+p.addr["ingress"]+"/")
}

// BenchmarkProxyGRPCWeb measures a gRPC-Web unary call against native gRPC
// through the same proxy (HTTP/1.1 downstream for gRPC-Web, as browsers
// without TLS use).
func BenchmarkProxyGRPCWeb(b *testing.B) {
	t := &testing.T{}
	grpcAddr, _ := webBackend(t)
	p := webProxy(t, grpcWebFilter, grpcAddr, tinyBackend(b))
	b.Cleanup(func() { p.stop(t) })
	url := "http://" + p.addr["ingress"] + "/grpc.testing.TestService/UnaryCall"
	msg, _ := proto.Marshal(&testpb.SimpleRequest{ResponseSize: 100})
	for _, text := range []bool{false, true} {
		body, ct := grpcFrame(0, msg), "application/grpc-web+proto"
		if text {
			body, ct = []byte(base64.StdEncoding.EncodeToString(body)), "application/grpc-web-text"
		}
		b.Run(map[bool]string{false: "binary", true: "text"}[text], func(b *testing.B) {
			c := h1Client()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				req, err := http.NewRequest("POST", url, bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Accept", ct)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
