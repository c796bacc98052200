package healthcheck

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func(mod func(*Config)) Config {
		c := Config{Timeout: time.Second, Interval: time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1,
			TCP: &TCPCheck{}}
		mod(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"tcp connect-only", ok(func(*Config) {}), ""},
		{"http", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/healthz?x=1", Method: "HEAD"} }), ""},
		{"grpc", ok(func(c *Config) { c.TCP, c.GRPC = nil, &GRPCCheck{ServiceName: "svc", Authority: "a"} }), ""},
		{"no timeout", ok(func(c *Config) { c.Timeout = 0 }), "timeout: must be greater than 0"},
		{"no interval", ok(func(c *Config) { c.Interval = 0 }), "interval: must be greater than 0"},
		{"negative jitter", ok(func(c *Config) { c.IntervalJitter = -1 }), "interval_jitter: must not be negative"},
		{"negative initial jitter", ok(func(c *Config) { c.InitialJitter = -1 }), "initial_jitter: must not be negative"},
		{"negative edge", ok(func(c *Config) { c.HealthyEdgeInterval = -time.Second }), "healthy_edge_interval"},
		{"negative no traffic", ok(func(c *Config) { c.NoTrafficInterval = -time.Second }), "no_traffic_interval"},
		{"zero unhealthy threshold", ok(func(c *Config) { c.UnhealthyThreshold = 0 }), "unhealthy_threshold: must be at least 1"},
		{"zero healthy threshold", ok(func(c *Config) { c.HealthyThreshold = 0 }), "healthy_threshold: must be at least 1"},
		{"no kind", ok(func(c *Config) { c.TCP = nil }), "exactly one of"},
		{"two kinds", ok(func(c *Config) { c.GRPC = &GRPCCheck{} }), "got 2"},
		{"http no path", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{} }), "http_health_check: path: must not be empty"},
		{"http relative path", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "healthz"} }), "must start with '/'"},
		{"http path with CRLF", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/a\r\nX: y"} }), "control characters"},
		{"http CONNECT", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", Method: "CONNECT"} }), `method: "CONNECT"`},
		{"http bad host", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", Host: "a\nb"} }), "host:"},
		{"http bad user agent", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", UserAgent: "a\x00"} }), "user agent"},
		{"http bad protocol", ok(func(c *Config) { c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", Protocol: 7} }), "codec_client_type: HTTPProtocol(7)"},
		{"status start >= end", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", ExpectedStatuses: []StatusRange{{200, 200}}}
		}), "expected_statuses[0]: expecting start < end"},
		{"status below 100", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", ExpectedStatuses: []StatusRange{{99, 200}}}
		}), "expecting start >= 100"},
		{"status above 600", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", RetriableStatuses: []StatusRange{{500, 601}}}
		}), "retriable_statuses[0]: expecting end <= 600"},
		{"header bad name", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", RequestHeaders: []Header{{"a b", "v"}}}
		}), "request_headers_to_add[0]: invalid header name"},
		{"header pseudo", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", RequestHeaders: []Header{{":path", "v"}}}
		}), "invalid header name"},
		{"header host", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", RequestHeaders: []Header{{"Host", "v"}}}
		}), `header "host" cannot be added`},
		{"header bad value", ok(func(c *Config) {
			c.TCP, c.HTTP = nil, &HTTPCheck{Path: "/", RequestHeaders: []Header{{"x", "a\rb"}}}
		}), `header "x": invalid value`},
		{"grpc bad authority", ok(func(c *Config) { c.TCP, c.GRPC = nil, &GRPCCheck{Authority: "a\nb"} }), "grpc_health_check: authority"},
		{"grpc bad metadata", ok(func(c *Config) {
			c.TCP, c.GRPC = nil, &GRPCCheck{InitialMetadata: []Header{{"", "v"}}}
		}), "initial_metadata[0]"},
		{"tcp empty receive blob", ok(func(c *Config) { c.TCP = &TCPCheck{Receive: [][]byte{[]byte("a"), nil}} }), "tcp_health_check: receive[1]: must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Timeout: time.Second, Interval: 3 * time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1,
		HTTP: &HTTPCheck{Path: "/"}}.withDefaults()
	if c.NoTrafficInterval != 60*time.Second || c.NoTrafficHealthyInterval != 60*time.Second {
		t.Errorf("no traffic intervals = %v, %v, want 60s, 60s", c.NoTrafficInterval, c.NoTrafficHealthyInterval)
	}
	if c.UnhealthyInterval != 3*time.Second || c.UnhealthyEdgeInterval != 3*time.Second || c.HealthyEdgeInterval != 3*time.Second {
		t.Errorf("intervals = %v, %v, %v, want interval (3s) each", c.UnhealthyInterval, c.UnhealthyEdgeInterval, c.HealthyEdgeInterval)
	}
	if !c.reuse() {
		t.Error("reuse_connection defaults to false, want Envoy's true")
	}
	if c.HTTP.Method != "GET" || c.HTTP.UserAgent != "Envoy/HC" || len(c.HTTP.ExpectedStatuses) != 1 || c.HTTP.ExpectedStatuses[0] != (StatusRange{200, 201}) {
		t.Errorf("http defaults = %+v", c.HTTP)
	}

	// Chained defaults: unhealthy_edge follows unhealthy, no_traffic_healthy follows no_traffic.
	c = Config{Interval: time.Second, UnhealthyInterval: 5 * time.Second, NoTrafficInterval: 7 * time.Second,
		ReuseConnection: boolPtr(false), TCP: &TCPCheck{}}.withDefaults()
	if c.UnhealthyEdgeInterval != 5*time.Second || c.NoTrafficHealthyInterval != 7*time.Second || c.reuse() {
		t.Errorf("chained defaults = %+v", c)
	}
}

func TestNewRejectsBadConfigs(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil || !strings.Contains(err.Error(), "no health check") {
		t.Errorf("New(nil) = %v, want a 'no health check' error", err)
	}
	good := Config{Timeout: time.Second, Interval: time.Second, UnhealthyThreshold: 1, HealthyThreshold: 1, TCP: &TCPCheck{}}
	bad := good
	bad.Timeout = 0
	_, err := New([]Config{good, bad}, Options{})
	if err == nil || !strings.Contains(err.Error(), "health_checks[1]: timeout") {
		t.Errorf("New = %v, want an error naming health_checks[1]: timeout", err)
	}
}

func TestNextInterval(t *testing.T) {
	cfg := Config{
		Interval: 1 * time.Second, UnhealthyInterval: 2 * time.Second, UnhealthyEdgeInterval: 3 * time.Second,
		HealthyEdgeInterval: 4 * time.Second, NoTrafficInterval: 5 * time.Second, NoTrafficHealthyInterval: 6 * time.Second,
	}
	tests := []struct {
		name    string
		healthy bool
		tr      transition
		traffic bool
		want    time.Duration
	}{
		{"healthy steady", true, unchanged, true, 1 * time.Second},
		{"became healthy", true, changed, true, 1 * time.Second},
		{"passing towards healthy", true, changePending, true, 4 * time.Second},
		{"failing steady", false, unchanged, true, 2 * time.Second},
		{"became unhealthy", false, changed, true, 2 * time.Second},
		{"failing towards unhealthy", false, changePending, true, 3 * time.Second},
		{"no traffic healthy", true, unchanged, false, 6 * time.Second},
		{"no traffic became healthy", true, changed, false, 6 * time.Second},
		{"no traffic passing towards healthy", true, changePending, false, 5 * time.Second},
		{"no traffic failing", false, unchanged, false, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextInterval(&cfg, tt.healthy, tt.tr, tt.traffic); got != tt.want {
				t.Errorf("nextInterval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	cfg := Config{Interval: time.Second, IntervalJitter: 100 * time.Millisecond, IntervalJitterPercent: 10}.withDefaults()
	sawAbove := false
	for range 200 {
		got := nextInterval(&cfg, true, unchanged, true)
		// base + [0, 10% of base) + [0, interval_jitter)
		if got < time.Second || got >= time.Second+100*time.Millisecond+100*time.Millisecond {
			t.Fatalf("jittered interval %v outside [1s, 1.2s)", got)
		}
		sawAbove = sawAbove || got > time.Second
	}
	if !sawAbove {
		t.Error("200 jittered intervals all equal the base")
	}
	for range 200 {
		if d := initialDelay(&cfg); d != 0 {
			t.Fatalf("initial delay %v without initial_jitter, want 0", d)
		}
	}
	cfg.InitialJitter = 50 * time.Millisecond
	for range 200 {
		// Envoy: intervalWithJitter(0, initial_jitter): percent of 0 is 0.
		if d := initialDelay(&cfg); d < time.Millisecond || d >= 50*time.Millisecond {
			t.Fatalf("initial delay %v outside [1ms, 50ms)", d)
		}
	}
	// Never 0, never overflowing.
	tiny := Config{IntervalJitterPercent: 4e9}
	if d := withJitter(&tiny, 0, 0); d != time.Millisecond {
		t.Errorf("withJitter(0) = %v, want the 1ms floor", d)
	}
	if d := withJitter(&tiny, 1<<62, 1<<62); d <= 0 {
		t.Errorf("withJitter overflowed to %v", d)
	}
	if d := addSat(math.MaxInt64-1, 2); d != math.MaxInt64 {
		t.Errorf("addSat = %v, want saturation", d)
	}
}

func TestMatchPayload(t *testing.T) {
	b := func(ss ...string) [][]byte {
		var out [][]byte
		for _, s := range ss {
			out = append(out, []byte(s))
		}
		return out
	}
	tests := []struct {
		blobs [][]byte
		buf   string
		want  bool
	}{
		{b("pong"), "pong", true},
		{b("po", "ng"), "xxpoyyngzz", true},
		{b("ng", "po"), "pong", false},
		{b("ab", "ab"), "ab", false},
		{b("ab", "ab"), "abab", true},
		{b("pong"), "pon", false},
		{nil, "", true},
	}
	for _, tt := range tests {
		if got := matchPayload(tt.blobs, []byte(tt.buf)); got != tt.want {
			t.Errorf("matchPayload(%q, %q) = %v, want %v", tt.blobs, tt.buf, got, tt.want)
		}
	}
}
