package backend

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/quic-go/quic-go/http3"
)

// h3Server is the HTTP/3 side of the backend: the same handler over QUIC.
type h3Server struct {
	conn net.PacketConn
	srv  *http3.Server
}

// tcpSource writes payload bytes to every accepted connection until the
// peer goes away.
type tcpSource struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// H3Addr is the bound HTTP/3 (UDP) address, or "" when not serving it.
func (s *Server) H3Addr() string {
	if s.h3 == nil {
		return ""
	}
	return s.h3.conn.LocalAddr().String()
}

// TCPSourceAddr is the bound bulk-source address, or "" when not serving it.
func (s *Server) TCPSourceAddr() string {
	if s.tcpSrc == nil {
		return ""
	}
	return s.tcpSrc.ln.Addr().String()
}

// startExtras opens the optional HTTP/3 and bulk-source listeners.
func (s *Server) startExtras() error {
	if s.cfg.H3Addr != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("backend: h3 certificate: %w", err)
		}
		conn, err := net.ListenPacket("udp", s.cfg.H3Addr)
		if err != nil {
			return fmt.Errorf("backend: listen h3: %w", err)
		}
		srv := &http3.Server{
			Handler:   http.HandlerFunc(s.serveHTTP),
			TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
		}
		s.h3 = &h3Server{conn: conn, srv: srv}
		s.wg.Go(func() {
			if err := srv.Serve(conn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.setErr(fmt.Errorf("backend: serve h3: %w", err))
			}
		})
	}
	if s.cfg.TCPSourceAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TCPSourceAddr)
		if err != nil {
			s.closeExtras()
			return fmt.Errorf("backend: listen tcp source: %w", err)
		}
		src := &tcpSource{ln: ln, conns: make(map[net.Conn]struct{})}
		s.tcpSrc = src
		s.wg.Go(src.serve)
	}
	return nil
}

func (s *Server) closeExtras() error {
	var errs []error
	if s.h3 != nil {
		errs = append(errs, s.h3.srv.Close())
		if err := s.h3.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.tcpSrc != nil {
		s.tcpSrc.close()
	}
	return errors.Join(errs...)
}

func (t *tcpSource) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.conns == nil {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			chunk := payload[:256<<10]
			for {
				if _, err := c.Write(chunk); err != nil {
					break
				}
			}
			c.Close()
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		}()
	}
}

// close stops accepting, closes every connection and waits for the writers.
func (t *tcpSource) close() {
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	t.wg.Wait()
}
