package forward

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteLocalReply(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ct         string
		reason     Reason
		wantStatus int
		wantGRPC   string
	}{
		{"no route", "", ReasonNoRoute, 404, ""},
		{"connect failure", "", ReasonConnectFailure, 503, ""},
		{"timeout", "", ReasonUpstreamTimeout, 504, ""},
		{"reset", "", ReasonUpstreamReset, 502, ""},
		{"grpc unavailable", "application/grpc", ReasonConnectFailure, 200, "14"},
		{"grpc+proto deadline", "application/grpc+proto", ReasonUpstreamTimeout, 200, "4"},
		{"grpc no route", "application/grpc", ReasonNoRoute, 200, "12"},
		{"grpc-web is not grpc", "application/grpc-web", ReasonNoRoute, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", nil)
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			w := httptest.NewRecorder()
			got := WriteLocalReply(w, r, tc.reason, "")
			if got != tc.wantStatus || w.Code != tc.wantStatus {
				t.Errorf("status %d/%d, want %d", got, w.Code, tc.wantStatus)
			}
			if g := w.Header().Get("Grpc-Status"); g != tc.wantGRPC {
				t.Errorf("grpc-status %q, want %q", g, tc.wantGRPC)
			}
		})
	}
}

func TestClientGoneWritesNothing(t *testing.T) {
	w := httptest.NewRecorder()
	if got := WriteLocalReply(w, httptest.NewRequest("GET", "/", nil), ReasonClientGone, ""); got != StatusClientClosed {
		t.Errorf("got %d", got)
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("wrote a reply to a client that left")
	}
}

func TestGRPCPercentEncode(t *testing.T) {
	if got := GRPCPercentEncode("a b%c\né"); got != "a b%25c%0A%C3%A9" {
		t.Errorf("got %q", got)
	}
}

func TestPrepareRequestHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Connection", "keep-alive, X-Secret")
	h.Set("X-Secret", "1")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Te", "trailers, deflate")
	h.Set("Upgrade", "websocket")
	h.Set("X-Keep", "yes")
	PrepareRequestHeaders(h, "")
	for _, k := range []string{"Connection", "X-Secret", "Keep-Alive", "Upgrade"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s survived", k)
		}
	}
	if h.Get("Te") != "trailers" || h.Get("X-Keep") != "yes" {
		t.Errorf("headers after: %v", h)
	}
	h = http.Header{}
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	PrepareRequestHeaders(h, "websocket")
	if h.Get("Connection") != "Upgrade" || h.Get("Upgrade") != "websocket" {
		t.Errorf("upgrade headers lost: %v", h)
	}
}
