package h1

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// parseString runs readHead and parseRequest over one request's bytes.
func parseString(t testing.TB, in string, limit int) (*http.Request, parsed, error) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	head, err := readHead(br, nil, limit)
	if err != nil {
		return nil, parsed{}, err
	}
	r := new(http.Request)
	var u url.URL
	var kb []byte
	p, rerr := parseRequest(head, r, http.Header{}, &u, &kb)
	if rerr != nil {
		return nil, p, rerr
	}
	return r, p, nil
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		limit      int
		wantErr    *requestError
		wantMethod string
		wantPath   string
		wantQuery  string
		wantHost   string
		wantCL     int64
		wantClose  bool
		check      func(t *testing.T, r *http.Request, p parsed)
	}{
		{name: "simple GET", in: "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h\r\n\r\n",
			wantMethod: "GET", wantPath: "/a/b", wantQuery: "x=1&y=%20", wantHost: "h"},
		{name: "bare LF lines", in: "GET / HTTP/1.1\nHost: h\n\n", wantMethod: "GET", wantPath: "/", wantHost: "h"},
		{name: "custom method", in: "PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n", wantMethod: "PURGE", wantPath: "/x", wantHost: "h"},
		{name: "escaped path", in: "GET /a%2Fb/c%20d HTTP/1.1\r\nHost: h\r\n\r\n", wantMethod: "GET", wantPath: "/a/b/c d", wantHost: "h",
			check: func(t *testing.T, r *http.Request, _ parsed) {
				if r.URL.RawPath != "/a%2Fb/c%20d" {
					t.Errorf("RawPath = %q", r.URL.RawPath)
				}
			}},
		{name: "absolute form wins over Host", in: "GET http://other:8080/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
			wantMethod: "GET", wantPath: "/p", wantQuery: "q", wantHost: "other:8080"},
		{name: "CONNECT authority", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			wantMethod: "CONNECT", wantHost: "example.com:443", check: func(t *testing.T, r *http.Request, _ parsed) {
				if r.URL.Host != "example.com:443" || r.URL.Scheme != "" {
					t.Errorf("URL = %#v", r.URL)
				}
			}},
		{name: "force query", in: "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", wantMethod: "GET", wantPath: "/a", wantHost: "h",
			check: func(t *testing.T, r *http.Request, _ parsed) {
				if !r.URL.ForceQuery {
					t.Error("ForceQuery not set")
				}
			}},
		{name: "headers canonical and duplicated", in: "GET / HTTP/1.1\r\nhost: h\r\nx-foo: 1\r\nX-FOO:  2 \r\naccept-encoding: gzip\r\n\r\n",
			wantMethod: "GET", wantPath: "/", wantHost: "h", check: func(t *testing.T, r *http.Request, _ parsed) {
				if got := r.Header["X-Foo"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
					t.Errorf("X-Foo = %q", got)
				}
				if r.Header.Get("Accept-Encoding") != "gzip" {
					t.Errorf("header = %v", r.Header)
				}
				if _, ok := r.Header["Host"]; ok {
					t.Error("Host left in the header map")
				}
			}},
		{name: "content length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n", wantMethod: "POST", wantPath: "/", wantHost: "h", wantCL: 12},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nTrailer: x-sum\r\n\r\n", wantMethod: "POST", wantPath: "/", wantHost: "h", wantCL: -1,
			check: func(t *testing.T, r *http.Request, p parsed) {
				if !p.chunked || !reflect.DeepEqual(r.TransferEncoding, []string{"chunked"}) {
					t.Errorf("chunked=%v TE=%v", p.chunked, r.TransferEncoding)
				}
				if _, ok := r.Trailer["X-Sum"]; !ok {
					t.Errorf("Trailer = %v", r.Trailer)
				}
				if _, ok := r.Header["Transfer-Encoding"]; ok {
					t.Error("Transfer-Encoding left in the header map")
				}
			}},
		{name: "connection close", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n", wantMethod: "GET", wantPath: "/", wantHost: "h", wantClose: true},
		{name: "HTTP/1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", wantMethod: "GET", wantPath: "/", wantClose: true},
		{name: "HTTP/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", wantMethod: "GET", wantPath: "/",
			check: func(t *testing.T, _ *http.Request, p parsed) {
				if !p.keepAlive10 {
					t.Error("keep-alive not seen")
				}
			}},
		{name: "expect continue", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", wantMethod: "POST", wantPath: "/", wantHost: "h", wantCL: 1,
			check: func(t *testing.T, _ *http.Request, p parsed) {
				if !p.expectContinue || p.expectOther {
					t.Errorf("expect = %v/%v", p.expectContinue, p.expectOther)
				}
			}},
		{name: "exact limit passes", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", limit: 27, wantMethod: "GET", wantPath: "/", wantHost: "h"},
		{name: "one byte over the limit", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", limit: 26, wantErr: errHeadersTooLarge},
		{name: "CL and TE", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errConflict},
		{name: "TE list", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", wantErr: errBadTE},
		{name: "TE twice", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errBadTE},
		{name: "TE on 1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errBadTE},
		{name: "CL twice", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", wantErr: errBadCL},
		{name: "CL sign", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", wantErr: errBadCL},
		{name: "CL overflow", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", wantErr: errBadCL},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", wantErr: errObsFold},
		{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", wantErr: errBareCR},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : h\r\n\r\n", wantErr: errBadHeaderName},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", wantErr: errBadHeaderName},
		{name: "control in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", wantErr: errBadHeaderValue},
		{name: "missing host", in: "GET / HTTP/1.1\r\n\r\n", wantErr: errMissingHost},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", wantErr: errTooManyHosts},
		{name: "bad host", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", wantErr: errBadHost},
		{name: "relative target", in: "GET foo HTTP/1.1\r\nHost: h\r\n\r\n", wantErr: errBadTarget},
		{name: "bad method", in: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", wantErr: errBadRequestLine},
		{name: "bad version", in: "GET / HTTP/1.x\r\nHost: h\r\n\r\n", wantErr: errBadRequestLine},
		{name: "HTTP/2 version", in: "GET / HTTP/2.0\r\nHost: h\r\n\r\n", wantErr: errVersion},
		{name: "h2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wantErr: errBadRequestLine},
		{name: "empty request line", in: "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", wantErr: errBadRequestLine},
		{name: "bad trailer key", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n", wantErr: errBadTrailerKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = 1 << 20
			}
			r, p, err := parseString(t, tt.in, limit)
			if tt.wantErr != nil {
				var re *requestError
				if !errors.As(err, &re) || re != tt.wantErr {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if r.Method != tt.wantMethod || r.URL.Path != tt.wantPath || r.URL.RawQuery != tt.wantQuery ||
				r.Host != tt.wantHost || r.ContentLength != tt.wantCL || r.Close != tt.wantClose {
				t.Errorf("got method %q path %q query %q host %q CL %d close %v", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.ContentLength, r.Close)
			}
			if tt.check != nil {
				tt.check(t, r, p)
			}
		})
	}
}

func TestParseRequestAllocs(t *testing.T) {
	in := []byte("GET /api/v1/items?id=42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nX-Custom-Thing: 1\r\n\r\n")
	r := new(http.Request)
	hdr := http.Header{}
	var u url.URL
	var kb []byte
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := parseRequest(in, r, hdr, &u, &kb); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("parseRequest allocs = %v, want <= 2", allocs)
	}
}

var parseSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n",
	"GET /%7Efoo/a%20b HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nX-A: 2\r\n\r\n",
	"GET http://h:1/p?q HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET //x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET /a!b'c(d) HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r\n",
}

// FuzzParseRequest: whenever both parsers accept a request, they agree on
// what it says. The codec may refuse more (it is stricter on framing).
func FuzzParseRequest(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ours, _, err := parseString(t, in, 1<<20)
		if err != nil {
			return
		}
		theirs, terr := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if terr != nil {
			// net/http refuses some things the server side accepts only
			// after its own checks; the codec must not be laxer on these.
			if strings.Contains(terr.Error(), "malformed") || strings.Contains(terr.Error(), "invalid") {
				t.Fatalf("codec accepted what net/http refuses (%v): %q", terr, in)
			}
			return
		}
		if theirs.ProtoAtLeast(1, 1) && theirs.Method != "CONNECT" && len(theirs.Header["Host"]) == 0 && theirs.Host == "" {
			return // net/http's server refuses it later
		}
		delete(theirs.Header, "Host")
		if ours.Method != theirs.Method || ours.Proto != theirs.Proto || ours.Host != theirs.Host ||
			ours.RequestURI != theirs.RequestURI || ours.ContentLength != theirs.ContentLength ||
			ours.Close != theirs.Close || !reflect.DeepEqual(ours.TransferEncoding, theirs.TransferEncoding) {
			t.Fatalf("input %q:\nours   %s %s %s host=%q cl=%d close=%v te=%v\ntheirs %s %s %s host=%q cl=%d close=%v te=%v", in,
				ours.Method, ours.RequestURI, ours.Proto, ours.Host, ours.ContentLength, ours.Close, ours.TransferEncoding,
				theirs.Method, theirs.RequestURI, theirs.Proto, theirs.Host, theirs.ContentLength, theirs.Close, theirs.TransferEncoding)
		}
		ou, tu := *ours.URL, *theirs.URL
		if ou.User.String() != tu.User.String() {
			t.Fatalf("input %q: URL user %q, net/http %q", in, ou.User, tu.User)
		}
		ou.User, tu.User = nil, nil
		if ou != tu {
			t.Fatalf("input %q: URL %#v, net/http %#v", in, *ours.URL, *theirs.URL)
		}
		if !reflect.DeepEqual(map[string][]string(ours.Header), map[string][]string(theirs.Header)) {
			t.Fatalf("input %q: header %v, net/http %v", in, ours.Header, theirs.Header)
		}
	})
}

// TestResetRequestCoversEveryField fails when net/http's Request grows an
// exported field that resetRequest does not clear (it would leak from one
// request on a connection to the next).
func TestResetRequestCoversEveryField(t *testing.T) {
	r := &http.Request{}
	v := reflect.ValueOf(r).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("x")
		case reflect.Int, reflect.Int64:
			fv.SetInt(7)
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
			switch fv.Kind() {
			case reflect.Pointer:
				fv.Set(reflect.New(fv.Type().Elem()))
			case reflect.Map:
				fv.Set(reflect.MakeMap(fv.Type()))
			case reflect.Slice:
				fv.Set(reflect.MakeSlice(fv.Type(), 1, 1))
			case reflect.Chan: // Request.Cancel is receive-only
				ch := reflect.MakeChan(reflect.ChanOf(reflect.BothDir, fv.Type().Elem()), 0)
				fv.Set(ch.Convert(fv.Type()))
			case reflect.Func:
				fv.Set(reflect.MakeFunc(fv.Type(), func([]reflect.Value) []reflect.Value { return nil }))
			case reflect.Interface:
				fv.Set(reflect.ValueOf(http.NoBody))
			}
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", f.Name, fv.Kind())
		}
	}
	resetRequest(r)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.IsExported() && !v.Field(i).IsZero() {
			t.Errorf("resetRequest leaves http.Request.%s set", f.Name)
		}
	}
}
