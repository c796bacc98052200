package jwtauthn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

// maxJWKSBytes bounds a fetched key set.
const maxJWKSBytes = 1 << 20

// provider is a Provider in force: its config and its keys.
type provider struct {
	name  string
	cfg   *Provider
	skew  time.Duration
	local *keySet
	// remote is set for remote_jwks.
	remote *remoteKeys
}

// keys returns the provider's key set, fetching it when needed.
func (p *provider) keys(ctx context.Context) (*keySet, Status) {
	if p.remote == nil {
		if p.local == nil {
			return nil, JwksNoValidKeys
		}
		return p.local, OK
	}
	return p.remote.get(ctx)
}

// cachedKeys is a fetched key set and when it stops being fresh.
type cachedKeys struct {
	set     *keySet
	expires time.Time
}

// fetchCall is one fetch in flight; requests that need keys wait on done.
type fetchCall struct {
	done chan struct{}
	set  *keySet
	err  error
}

// remoteKeys fetches and caches a remote JWKS. Fetches run one at a time:
// concurrent requests share the one in flight.
type remoteKeys struct {
	cfg      RemoteJWKS
	uri      *url.URL
	filter   *Filter
	cur      atomic.Pointer[cachedKeys]
	mu       sync.Mutex
	inflight *fetchCall
}

// get returns fresh keys, or with async_fetch the stale ones while a
// refresh runs; otherwise it waits for a fetch (bounded by its timeout and
// by ctx).
func (k *remoteKeys) get(ctx context.Context) (*keySet, Status) {
	c := k.cur.Load()
	if c != nil && k.filter.now().Before(c.expires) {
		return c.set, OK
	}
	call := k.start()
	if c != nil && k.cfg.AsyncFetch {
		return c.set, OK
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, JwksFetchFail
	}
	if call.err != nil {
		return nil, JwksFetchFail
	}
	return call.set, OK
}

// start begins a fetch unless one is in flight, and returns it.
func (k *remoteKeys) start() *fetchCall {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	call := &fetchCall{done: make(chan struct{})}
	k.inflight = call
	// The goroutine ends with the fetch, which its timeout bounds.
	go k.run(call)
	return call
}

func (k *remoteKeys) run(call *fetchCall) {
	call.set, call.err = k.fetch()
	if call.err == nil {
		k.cur.Store(&cachedKeys{set: call.set, expires: k.filter.now().Add(k.cacheDuration())})
		k.filter.fetchOK.Add(1)
	} else {
		k.filter.fetchFailed.Add(1)
		k.filter.logFetchError(k.cfg.URI, call.err)
	}
	k.mu.Lock()
	k.inflight = nil
	k.mu.Unlock()
	close(call.done)
}

func (k *remoteKeys) cacheDuration() time.Duration {
	if k.cfg.CacheDuration > 0 {
		return k.cfg.CacheDuration
	}
	return DefaultCacheDuration
}

// errNoClusters says the filter has not been given the proxy's clusters.
var errNoClusters = errors.New("the filter has no clusters to fetch through")

// fetch GETs the key set through a host of the cluster, with the
// cluster's protocol, TLS, load balancing and circuit breakers.
func (k *remoteKeys) fetch() (*keySet, error) {
	timeout := k.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cls := k.filter.clusters.Load()
	if cls == nil {
		return nil, errNoClusters
	}
	up, ok := (*cls).Upstream(k.cfg.Cluster)
	if !ok {
		return nil, fmt.Errorf("cluster %q does not exist", k.cfg.Cluster)
	}
	h, err := up.Pick(nil)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", k.cfg.Cluster, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Host = k.uri.Host
	req.Header.Set("Accept", "application/json")
	resp, err := up.RoundTrip(req, h)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", k.cfg.Cluster, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the key set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("the key set is larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// Clusters is what the filter fetches remote key sets through: the
// connection manager's clusters.
type Clusters = hcm.Clusters
