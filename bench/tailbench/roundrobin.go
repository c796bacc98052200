package tailbench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
)

// roundRobin is the direct row's client: the load generator itself spreads
// requests over the backends in turn, as a client-side balancer with no
// proxy would. Each session holds one connection per backend.
type roundRobin struct {
	clients []loadgen.Client
	next    atomic.Uint64
}

// newRoundRobin builds an HTTP/1.1 client per address.
func newRoundRobin(addrs []string) (*roundRobin, error) {
	if len(addrs) == 0 {
		return nil, errors.New("tailbench: round robin over no backend")
	}
	rr := &roundRobin{}
	for _, a := range addrs {
		c, err := loadgen.NewClient(loadgen.Target{Protocol: loadgen.HTTP1, Addr: a})
		if err != nil {
			_ = rr.Close()
			return nil, fmt.Errorf("tailbench: client for %s: %w", a, err)
		}
		rr.clients = append(rr.clients, c)
	}
	return rr, nil
}

// NewSession opens a session on every backend's client.
func (c *roundRobin) NewSession() (loadgen.Session, error) {
	s := &rrSession{c: c}
	for _, cl := range c.clients {
		sub, err := cl.NewSession()
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.subs = append(s.subs, sub)
	}
	return s, nil
}

// Close closes every backend's client.
func (c *roundRobin) Close() error {
	var errs []error
	for _, cl := range c.clients {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

type rrSession struct {
	c    *roundRobin
	subs []loadgen.Session
}

// Do sends to the next backend in the shared rotation.
func (s *rrSession) Do(ctx context.Context) error {
	i := (s.c.next.Add(1) - 1) % uint64(len(s.subs))
	return s.subs[i].Do(ctx)
}

func (s *rrSession) Close() error {
	var errs []error
	for _, sub := range s.subs {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
}
