package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

func TestBackoffIsFullJitterBounded(t *testing.T) {
	const base, max = 20 * time.Millisecond, 30 * time.Second
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	for n := range 100 {
		ceiling := max
		if n < 20 && base<<n < max {
			ceiling = base << n
		}
		if got := backoff(n, base, max, top); got != ceiling {
			t.Fatalf("attempt %d: largest delay %s, want %s", n, got, ceiling)
		}
		if got := backoff(n, base, max, bottom); got != 0 {
			t.Fatalf("attempt %d: smallest delay %s, want 0", n, got)
		}
		for range 50 {
			if got := backoff(n, base, max, rand.Int64N); got < 0 || got > ceiling {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", n, got, ceiling)
			}
		}
	}
	// Full jitter spreads: many draws at one attempt are not all equal.
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[backoff(5, base, max, rand.Int64N)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 100 draws", len(seen))
	}
	if got := backoff(3, 0, 0, top); got != 0 {
		t.Fatalf("zero bounds: %s", got)
	}
}

func TestClusterEndpointsName(t *testing.T) {
	eds := func(name, service string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: service},
		}
	}
	tests := []struct {
		c    *clusterv3.Cluster
		want string
	}{
		{eds("c1", ""), "c1"},
		{eds("c1", "svc"), "svc"},
		{&clusterv3.Cluster{Name: "static"}, ""},
		{&clusterv3.Cluster{Name: "dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}}, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(clusterEndpoints(tt.c), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.c.GetName(), got, tt.want)
		}
	}
}

func TestJoinErrorsCaps(t *testing.T) {
	var errs []error
	for i := range 11 {
		errs = append(errs, fmt.Errorf("e%d", i))
	}
	if got := joinErrors(errs); got != "e0; e1; e2; e3; e4; e5; e6; e7; and 3 more" {
		t.Fatalf("%q", got)
	}
	if got := joinErrors([]error{errors.New("one")}); got != "one" {
		t.Fatalf("%q", got)
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name                string
		in                  Config
		base, max, deadline time.Duration
	}{
		{"all defaults", Config{}, defaultBackoffBase, defaultBackoffMax, defaultInitialFetchTimeout},
		{"small max", Config{BackoffMax: 100 * time.Millisecond}, 100 * time.Millisecond, 100 * time.Millisecond, defaultInitialFetchTimeout},
		{"large base", Config{BackoffBase: time.Minute}, time.Minute, time.Minute, defaultInitialFetchTimeout},
		{"no fetch timeout", Config{InitialFetchTimeout: -1}, defaultBackoffBase, defaultBackoffMax, -1},
	}
	for _, tt := range tests {
		c := New(tt.in, nil)
		if c.cfg.BackoffBase != tt.base || c.cfg.BackoffMax != tt.max || c.cfg.InitialFetchTimeout != tt.deadline {
			t.Errorf("%s: base %s max %s timeout %s", tt.name, c.cfg.BackoffBase, c.cfg.BackoffMax, c.cfg.InitialFetchTimeout)
		}
	}
}

func TestNegativeInitialFetchTimeoutWaitsForever(t *testing.T) {
	cfg := Config{LDS: true, CDS: true, InitialFetchTimeout: -1}
	c := New(cfg, nil)
	start := time.Now()
	c.startWarming(start)
	c.types[kindCluster].entries["C1"] = &entry{msg: &clusterv3.Cluster{Name: "C1"}, refs: []string{"C1"}}
	c.types[kindCluster].received = true
	c.refreshWanted(start)
	if _, ok := c.nextDeadline(); ok {
		t.Fatal("a deadline is set although the timeout is disabled")
	}
	later := start.Add(24 * time.Hour)
	for _, st := range c.types {
		if st.expire(later, c.log) {
			t.Fatalf("%s expired", st.url)
		}
	}
	if c.complete() {
		t.Fatal("complete without listeners and C1's assignment")
	}
}
