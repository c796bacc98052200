package loadgen

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestH3StatusAndUnreachable(t *testing.T) {
	be := startBackend(t)
	c := newClient(t, Target{Protocol: H3, Addr: be.H3Addr(), Path: "/?size=bad"})
	res, err := Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, MaxRequests: 3, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.ErrorKinds["h3: status 400"] != 3 {
		t.Fatalf("ok %d kinds %v, want three 400s", res.OK, res.ErrorKinds)
	}

	// A UDP port nobody serves: each request times out, the run still ends.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	c = newClient(t, Target{Protocol: H3, Addr: addr, Timeout: 100 * time.Millisecond})
	res, err = Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, MaxRequests: 2, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Failed() == 0 {
		t.Fatalf("ok %d failed %d, want only failures", res.OK, res.Failed())
	}
}

func TestTCPBulkErrors(t *testing.T) {
	// Nothing listens: the session cannot even connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, Target{Protocol: TCPBulk, Addr: addr})
	if _, err := Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, Workers: 1}); err == nil || !strings.Contains(err.Error(), "tcp-bulk: dial") {
		t.Fatalf("err = %v, want a dial error", err)
	}

	// A source that sends less than a chunk, then closes.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write(make([]byte, 1000))
			conn.Close()
		}
	}()
	c = newClient(t, Target{Protocol: TCPBulk, Addr: ln.Addr().String()})
	res, err := Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, MaxRequests: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 1 || !strings.Contains(res.ErrorSummary(), "closed with") {
		t.Fatalf("ok %d errors %d (%s), want one short-read error", res.OK, res.Errors, res.ErrorSummary())
	}

	// A source that accepts but never writes: the read times out.
	quiet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	c = newClient(t, Target{Protocol: TCPBulk, Addr: quiet.Addr().String(), Timeout: 50 * time.Millisecond})
	res, err = Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, MaxRequests: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 1 || !strings.Contains(res.ErrorSummary(), "tcp-bulk: read") {
		t.Fatalf("ok %d errors %d (%s), want one read timeout", res.OK, res.Errors, res.ErrorSummary())
	}
}
