package cpscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// maxRecvMsgSize lifts grpc-go's 4 MiB default: a state-of-the-world EDS
// response of a large mesh is bigger.
const maxRecvMsgSize = 256 << 20

// fleet is N simulated sidecars over K gRPC connections to one xDS server.
type fleet struct {
	delta   bool
	conns   []*grpc.ClientConn
	streams []*adsStream

	synced      []atomic.Int64 // per stream, when it first synced (unix ns); 0 = not yet
	syncedCount atomic.Int64
	alive       atomic.Int64 // streams running
	current     atomic.Pointer[tracking]

	mu     sync.Mutex
	errors map[string]int // why streams ended, by gRPC code / message
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// fleetOptions configure newFleet.
type fleetOptions struct {
	addr           string
	layout         Layout
	streamsPerConn int
	delta          bool
	// openConcurrency bounds the streams that are opening (not yet synced)
	// at once, as a fleet of proxies starting up would spread out.
	openConcurrency int
}

// newFleet dials the connections (lazily: each connects with its first
// stream) and starts every stream in the background.
func newFleet(ctx context.Context, o fleetOptions) (*fleet, error) {
	n := o.layout.Proxies
	k := (n + o.streamsPerConn - 1) / o.streamsPerConn
	f := &fleet{delta: o.delta, streams: make([]*adsStream, n), synced: make([]atomic.Int64, n), errors: map[string]int{}}
	for range k {
		conn, err := grpc.NewClient("passthrough:///"+o.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithSharedWriteBuffer(true),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)))
		if err != nil {
			f.closeConns()
			return nil, fmt.Errorf("cpscale: grpc client for %s: %w", o.addr, err)
		}
		f.conns = append(f.conns, conn)
	}
	ctx, f.cancel = context.WithCancel(ctx)
	sem := make(chan struct{}, max(1, o.openConcurrency))
	f.alive.Store(int64(n))
	f.wg.Go(func() {
		for i := range n {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				f.alive.Add(int64(i - n))
				return
			}
			s := &adsStream{f: f, idx: i, node: &corev3.Node{
				Id: o.layout.ProxyID(i), Cluster: o.layout.ProxyService(i), UserAgentName: UserAgent,
			}}
			f.streams[i] = s
			conn := f.conns[i/o.streamsPerConn]
			f.wg.Go(func() {
				release := sync.OnceFunc(func() { <-sem })
				defer release()
				s.onSync = release
				var err error
				if f.delta {
					err = s.runDelta(ctx, conn)
				} else {
					err = s.runSotW(ctx, conn)
				}
				f.alive.Add(-1)
				if ctx.Err() == nil {
					f.recordError(err)
				}
			})
		}
	})
	return f, nil
}

// recordError counts why a stream ended.
func (f *fleet) recordError(err error) {
	key := "ended"
	switch {
	case err == nil, errors.Is(err, io.EOF):
		key = "closed by the server"
	default:
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			key = st.Code().String() + ": " + st.Message()
		} else {
			key = err.Error()
		}
	}
	f.mu.Lock()
	f.errors[key]++
	f.mu.Unlock()
}

// Errors returns why streams ended, by reason.
func (f *fleet) Errors() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.errors))
	for k, v := range f.errors {
		out[k] = v
	}
	return out
}

func (f *fleet) markSynced(i int, at time.Time) {
	f.synced[i].Store(at.UnixNano())
	f.syncedCount.Add(1)
}

// waitSynced polls until every stream has synced, no stream that has not
// is still running, or ctx ends.
func (f *fleet) waitSynced(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		synced, alive := f.syncedCount.Load(), f.alive.Load()
		if synced == int64(len(f.streams)) {
			return nil
		}
		if alive == 0 {
			return fmt.Errorf("cpscale: every stream ended, %d synced first: %v", synced, f.Errors())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cpscale: %d of %d streams synced (%d running): %w; stream errors: %v",
				synced, len(f.streams), alive, ctx.Err(), f.Errors())
		case <-tick.C:
		}
	}
}

// SyncTimes returns when each synced stream synced, sorted.
func (f *fleet) syncTimes() []time.Time {
	var out []time.Time
	for i := range f.synced {
		if ns := f.synced[i].Load(); ns != 0 {
			out = append(out, time.Unix(0, ns))
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Before(out[b]) })
	return out
}

// close ends every stream and connection and waits for them.
func (f *fleet) close() {
	f.cancel()
	f.wg.Wait()
	f.closeConns()
}

func (f *fleet) closeConns() {
	for _, c := range f.conns {
		_ = c.Close()
	}
}

// tracking follows one change across the fleet.
type tracking struct {
	id     int64
	change *Change
	acks   []atomic.Int64 // per stream: when it ACKed the response showing the change (unix ns)
	got    atomic.Int64
}

func (tr *tracking) record(i int, at time.Time) {
	if tr.acks[i].CompareAndSwap(0, at.UnixNano()) {
		tr.got.Add(1)
	}
}

var nextChangeID atomic.Int64

// track starts following ch; streams look for it in every response from
// now on.
func (f *fleet) track(ch *Change) *tracking {
	tr := &tracking{id: nextChangeID.Add(1), change: ch, acks: make([]atomic.Int64, len(f.streams))}
	f.current.Store(tr)
	return tr
}

// waitChange polls until every running stream has shown tr's change or
// ctx ends; it then stops tracking.
func (f *fleet) waitChange(ctx context.Context, tr *tracking) {
	defer f.current.CompareAndSwap(tr, nil)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for tr.got.Load() < f.alive.Load() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
