package cluster

import (
	"net/http"
	"testing"
)

func TestUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		gs   []string
		want int
	}{
		{200, nil, 200},
		{503, nil, 503},
		{200, []string{"0"}, 200},
		{200, []string{"14"}, 503}, // UNAVAILABLE: a sidecar whose app is gone
		{200, []string{"4"}, 504},
		{200, []string{"8"}, 429},
		{200, []string{"1"}, 499},
		{200, []string{"13"}, 500},
		{200, []string{"99"}, 500},
		{200, []string{"x"}, 500},
		{502, []string{"0"}, 502}, // not a gRPC answer: the HTTP status stands
	} {
		resp := &http.Response{StatusCode: tc.code, Header: http.Header{}}
		if tc.gs != nil {
			resp.Header["Grpc-Status"] = tc.gs
		}
		if got := upstreamStatus(resp); got != tc.want {
			t.Errorf("HTTP %d grpc-status %v: %d, want %d", tc.code, tc.gs, got, tc.want)
		}
	}
}
