package listener

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/outrigger-mesh/outrigger/internal/coalesce"
)

// bufferedConn is an accepted loopback connection as dispatch makes it for
// plaintext HTTP/2: buffered reads, with peer the client's end.
func bufferedConn(t *testing.T, peeked string) (*trackedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := &trackedConn{l: &Listener{}, peeked: []byte(peeked)}
	tc.Socket = coalesce.NewSocket(c, tc)
	tc.bufferReads()
	t.Cleanup(func() { c.Close(); peer.Close() })
	return tc, peer
}

// Frame-sized reads are served from one system call's worth of bytes, in
// order after the peeked preface; a read as large as the buffer takes what
// is buffered first; Raw hands over the peeked and the buffered bytes.
func TestBufferedReads(t *testing.T) {
	tc, peer := bufferedConn(t, "PRI")
	stream := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes
	if _, err := peer.Write(stream); err != nil {
		t.Fatal(err)
	}
	var got []byte
	hdr := make([]byte, 9)
	for len(got) < 3+len(stream)-5000 {
		n, err := tc.Read(hdr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hdr[:n]...)
	}
	big := make([]byte, 4<<10) // >= the buffer: drains it first
	n, err := tc.Read(big)
	if err != nil || n == 0 {
		t.Fatalf("large read: %d, %v", n, err)
	}
	got = append(got, big[:n]...)
	if want := append([]byte("PRI"), stream...); !bytes.HasPrefix(want, got) {
		t.Fatalf("bytes out of order after %d", len(got))
	}

	// Raw: nothing may be lost when the connection is handed over.
	tc2, peer2 := bufferedConn(t, "GET")
	if _, err := peer2.Write([]byte(" / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(tc2, one[:1]); err != nil { // the peeked G
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc2, make([]byte, 3)); err != nil { // "ET " (fills the buffer)
		t.Fatal(err)
	}
	raw, rest := tc2.Raw()
	_ = peer2.Close()
	tail, _ := io.ReadAll(raw)
	if got := "GET " + string(rest) + string(tail); got != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
		t.Fatalf("handed over %q", got)
	}
}
