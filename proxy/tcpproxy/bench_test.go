package tcpproxy

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// benchSize is what one benchmark iteration moves: 256 MiB.
const benchSize = 256 << 20

// BenchmarkThroughput moves 256 MiB per iteration from a client to a sink
// on loopback, directly and through the proxy, in the same run:
//
//	go test -run '^$' -bench Throughput -benchtime 8x ./proxy/tcpproxy
//
// "proxy" splices between the sockets; "proxy-nosplice" hides the
// downstream's *net.TCPConn so the same proxy copies through its buffer,
// to show what splice saves; "splice-floor" (Linux) is a bare relay of
// blocking splice calls on locked threads, the most a user-space relay can
// do here. Compare the MB/s of one run only.
func BenchmarkThroughput(b *testing.B) {
	sink := serveTCP(b, discardAndCount)
	m := clusters(b, static("sink", sink))
	p, err := New(Config{Cluster: "sink", IdleTimeout: DefaultIdleTimeout}, Deps{Clusters: m, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	spliced := startFront(b, p, nil)
	copied := startFront(b, p, func(c *net.TCPConn) net.Conn { return struct{ net.Conn }{c} })
	cases := []struct{ name, addr string }{
		{"direct", sink},
		{"proxy", spliced.addr},
		{"proxy-nosplice", copied.addr},
	}
	if spliceFloor != nil {
		cases = append(cases, struct{ name, addr string }{"splice-floor", spliceFloor(b, sink)})
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(benchSize)
			for b.Loop() {
				if err := send(bc.addr, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// spliceFloor starts the bare splice relay to target (Linux only).
var spliceFloor func(b *testing.B, target string) string

// send writes benchSize bytes to addr, half-closes, and waits for the
// sink's count of what it received.
func send(addr string, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	for sent := 0; sent < benchSize; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	var n [8]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint64(n[:]); got != benchSize {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// discardAndCount reads to the end of stream and answers the byte count.
func discardAndCount(c *net.TCPConn) {
	buf := make([]byte, 1<<20)
	var n uint64
	for {
		r, err := c.Read(buf)
		n += uint64(r)
		if err != nil {
			break
		}
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], n)
	_, _ = c.Write(out[:])
}
