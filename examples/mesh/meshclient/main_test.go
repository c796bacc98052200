package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMatches(t *testing.T) {
	exp := map[string]float64{"v1": 50, "v2": 50}
	for _, tc := range []struct {
		counts map[string]int
		want   bool
	}{
		{map[string]int{"v1": 50, "v2": 50}, true},
		{map[string]int{"v1": 60, "v2": 40}, true},
		{map[string]int{"v1": 80, "v2": 20}, false},
		{map[string]int{"v1": 50, "v2": 49, "error: connect": 1}, false},
		{map[string]int{}, false},
	} {
		if got := matches(tc.counts, exp, 15); got != tc.want {
			t.Errorf("matches(%v) = %v, want %v", tc.counts, got, tc.want)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-expect", "v1"},
		{"-expect", "v1=120"},
		{"-window", "0"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}

// Against a real HTTP server that alternates two names, -expect 50/50
// holds at once and 100/0 times out with the last window in the error.
func TestUntil(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		name := "v1"
		if n.Add(1)%2 == 0 {
			name = "v2"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"service": name})
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out strings.Builder
	if err := run(context.Background(), []string{"-http", addr, "-window", "20", "-expect", "v1=50,v2=50", "-timeout", "5s"}, &out, io.Discard); err != nil {
		t.Fatalf("50/50: %v\n%s", err, out.String())
	}
	start := time.Now()
	err := run(context.Background(), []string{"-http", addr, "-window", "20", "-expect", "v1=100", "-timeout", "300ms"}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "v2 50%") {
		t.Fatalf("100/0: err %v, want a timeout naming the last window", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("timeout not honoured")
	}
}
