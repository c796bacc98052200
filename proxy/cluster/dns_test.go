package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers from a table the test changes; a name mapped to nil
// fails.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]net.IP
	calls   int
}

func (r *fakeResolver) set(name string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answers == nil {
		r.answers = map[string][]net.IP{}
	}
	if ips == nil {
		r.answers[name] = nil
		return
	}
	parsed := make([]net.IP, len(ips))
	for i, s := range ips {
		parsed[i] = net.ParseIP(s)
	}
	r.answers[name] = parsed
}

func (r *fakeResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	ips := r.answers[host]
	if ips == nil {
		return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
	}
	var out []net.IP
	for _, ip := range ips {
		is4 := ip.To4() != nil
		if network == "ip" || (network == "ip4") == is4 {
			out = append(out, ip)
		}
	}
	return out, nil
}

func (r *fakeResolver) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func addrs(c *Cluster) []string {
	var out []string
	for _, h := range c.Hosts() {
		out = append(out, h.Address)
	}
	return out
}

func waitAddrs(t *testing.T, c *Cluster, want ...string) {
	t.Helper()
	waitFor(t, "hosts "+strings.Join(want, ","), func() bool { return slices.Equal(addrs(c), want) })
}

func TestStrictDNSLocalhost(t *testing.T) {
	addr := backend(t, "local")
	_, port, _ := net.SplitHostPort(addr)
	ips, err := net.DefaultResolver.LookupIP(t.Context(), "ip", "localhost")
	if err != nil {
		t.Fatalf("resolving localhost: %v", err)
	}
	var want []string
	for _, ip := range ips {
		if ip4 := ip.To4(); ip4 != nil {
			want = append(want, net.JoinHostPort(ip4.String(), port))
		}
	}
	for _, ip := range ips {
		if ip.To4() == nil {
			want = append(want, net.JoinHostPort(ip.String(), port))
		}
	}
	if !slices.Contains(want, net.JoinHostPort("127.0.0.1", port)) {
		t.Fatalf("localhost resolves to %v, without 127.0.0.1", ips)
	}
	m := newManager(t)
	update(t, m, Config{Name: "local", Discovery: StrictDNS, DNSFamily: DNSAll,
		Endpoints: []Endpoint{{Address: "localhost:" + port, Weight: 2}}})
	if err := m.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := m.Get("local")
	got := addrs(c)
	if !slices.Equal(got, want) {
		t.Fatalf("hosts %v, want %v", got, want)
	}
	for _, h := range c.Hosts() {
		if h.Weight() != 2 || h.Hostname != "localhost" {
			t.Fatalf("host %s weight %d hostname %q, want 2 and localhost", h.Address, h.Weight(), h.Hostname)
		}
	}
	// The IPv4 host answers (the backend listens on 127.0.0.1 only).
	for _, h := range c.Hosts() {
		if h.Address != net.JoinHostPort("127.0.0.1", port) {
			h.SetFlag(1, true)
		}
	}
	if _, body, err := do(t, c, t.Context(), 1); err != nil || body != "local HTTP/1.1" {
		t.Fatalf("request via localhost: %q, %v", body, err)
	}
}

func TestDNSRefresh(t *testing.T) {
	r := &fakeResolver{}
	r.set("svc.test", "10.0.0.1", "10.0.0.2")
	m := newManager(t, WithResolver(r))
	update(t, m, Config{Name: "svc", Discovery: StrictDNS, DNSRefreshRate: 10 * time.Millisecond,
		Endpoints: []Endpoint{{Address: "svc.test:80", Weight: 5}, {Address: "10.9.9.9:81"}}})
	c := m.Get("svc")
	<-c.Ready()
	waitAddrs(t, c, "10.0.0.1:80", "10.0.0.2:80", "10.9.9.9:81")
	kept := c.Hosts()[1]
	kept.Stats.RqTotal.Add(7)

	// A failed refresh keeps the last good addresses.
	r.set("svc.test")
	before := r.callCount()
	waitFor(t, "two failed refreshes", func() bool { return r.callCount() >= before+2 })
	waitAddrs(t, c, "10.0.0.1:80", "10.0.0.2:80", "10.9.9.9:81")

	// A change of addresses replaces hosts; one that stays keeps its state.
	r.set("svc.test", "10.0.0.2", "10.0.0.3")
	waitAddrs(t, c, "10.0.0.2:80", "10.0.0.3:80", "10.9.9.9:81")
	if h := c.Hosts()[0]; h != kept || h.Stats.RqTotal.Load() != 7 {
		t.Fatal("host 10.0.0.2 lost its state across a DNS refresh")
	}
	if w := c.Hosts()[1].Weight(); w != 5 {
		t.Fatalf("resolved host weight %d, want the endpoint's 5", w)
	}
}

func TestLogicalDNSFirstAddress(t *testing.T) {
	r := &fakeResolver{}
	r.set("svc.test", "10.0.0.1", "10.0.0.2")
	m := newManager(t, WithResolver(r))
	update(t, m, Config{Name: "svc", Discovery: LogicalDNS, DNSRefreshRate: 10 * time.Millisecond,
		Endpoints: []Endpoint{{Address: "svc.test:80"}}})
	c := m.Get("svc")
	waitAddrs(t, c, "10.0.0.1:80")
	r.set("svc.test", "10.0.0.7", "10.0.0.1")
	waitAddrs(t, c, "10.0.0.7:80")
}

func TestDNSFamily(t *testing.T) {
	tests := []struct {
		name    string
		family  DNSFamily
		answer  []string
		want    []string
		wantErr bool
	}{
		{name: "auto prefers v6", family: DNSAuto, answer: []string{"10.0.0.1", "fd00::1"}, want: []string{"fd00::1"}},
		{name: "auto falls back to v4", family: DNSAuto, answer: []string{"10.0.0.1"}, want: []string{"10.0.0.1"}},
		{name: "v4 only", family: DNSV4Only, answer: []string{"10.0.0.1", "fd00::1"}, want: []string{"10.0.0.1"}},
		{name: "v6 only", family: DNSV6Only, answer: []string{"10.0.0.1", "fd00::1"}, want: []string{"fd00::1"}},
		{name: "v6 only without v6", family: DNSV6Only, answer: []string{"10.0.0.1"}, wantErr: true},
		{name: "v4 preferred", family: DNSV4Preferred, answer: []string{"fd00::1", "10.0.0.1"}, want: []string{"10.0.0.1"}},
		{name: "all", family: DNSAll, answer: []string{"fd00::1", "10.0.0.1"}, want: []string{"10.0.0.1", "fd00::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeResolver{}
			r.set("n", tt.answer...)
			ips, err := lookup(t.Context(), r, tt.family, "n")
			if tt.wantErr {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) {
					t.Fatalf("lookup = %v, %v; want a DNS error", ips, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ip := range ips {
				got = append(got, ip.String())
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("lookup = %v, want %v", got, tt.want)
			}
		})
	}
}
