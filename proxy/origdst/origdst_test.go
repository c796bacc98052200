package origdst

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// The real redirection (nftables and iptables, in a network namespace) is
// tested in proxy/redirect, which uses this package as its proxy does, and
// end to end with the real proxy in transparent_linux_test.go.

func TestNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := Get(a); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("err = %v", err)
	}
}

func TestNotTCP(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Get(c); err == nil || !strings.Contains(err.Error(), "is not a TCP address") {
		t.Fatalf("err = %v", err)
	}
}

// TestDirectConnection: a connection no rule redirected either has no
// conntrack entry or reports its own local address; Redirected says false.
func TestDirectConnection(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			lis, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("SKIP: no %s loopback: %v", network, err)
			}
			defer lis.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := lis.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			client, err := net.Dial(network, lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server := <-accepted
			if server == nil {
				t.Fatal("accept failed")
			}
			defer server.Close()
			dst, redirected, err := Redirected(server)
			switch {
			case errors.Is(err, ErrNoOriginal):
				// conntrack is not loaded here: no entry at all.
			case err != nil:
				t.Fatalf("Redirected: %v", err)
			case redirected:
				t.Errorf("a direct connection reported as redirected to %v", dst)
			case dst.String() != lis.Addr().String():
				t.Errorf("original destination %v, want the listener's %v", dst, lis.Addr())
			}
		})
	}
}

func TestRestoreDirect(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		if c, err := net.Dial("tcp", lis.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	server, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	got, redirected, err := Restore(server)
	if err != nil || redirected || got != server {
		t.Fatalf("Restore = %v, %v, %v; want the connection itself, false, nil", got, redirected, err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, _, err := Restore(a); err == nil {
		t.Error("Restore of a pipe succeeded")
	}
}
