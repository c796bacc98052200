package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// TCPBulkChunk is what one TCPBulk operation reads: 1 MiB.
const TCPBulkChunk = 1 << 20

// tcpBulkClient gives each session its own TCP connection to a server that
// streams bytes without being asked (the backend's bulk source); one
// operation reads TCPBulkChunk bytes off it, so operations per second are
// MiB per second.
type tcpBulkClient struct{ t Target }

func newTCPBulkClient(t Target) (Client, error) { return &tcpBulkClient{t: t}, nil }

func (c *tcpBulkClient) NewSession() (Session, error) {
	conn, err := net.DialTimeout("tcp", c.t.Addr, c.t.timeout())
	if err != nil {
		return nil, fmt.Errorf("tcp-bulk: dial %s: %w", c.t.Addr, err)
	}
	return &tcpBulkSession{t: c.t, conn: conn, buf: make([]byte, 256<<10)}, nil
}

func (c *tcpBulkClient) Close() error { return nil }

type tcpBulkSession struct {
	t    Target
	conn net.Conn
	buf  []byte
}

func (s *tcpBulkSession) Do(ctx context.Context) error {
	deadline := time.Now().Add(s.t.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("tcp-bulk: %w", err)
	}
	for left := TCPBulkChunk; left > 0; {
		n := min(left, len(s.buf))
		m, err := s.conn.Read(s.buf[:n])
		left -= m
		if err == io.EOF {
			return fmt.Errorf("tcp-bulk: connection closed with %d bytes of the chunk unread", left)
		}
		if err != nil {
			return fmt.Errorf("tcp-bulk: read: %w", err)
		}
	}
	return nil
}

func (s *tcpBulkSession) Close() error { return s.conn.Close() }
