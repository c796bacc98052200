package server

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ads is the Aggregated Discovery Service, state of the world and delta,
// over go-control-plane's caches. It keeps go-control-plane's protocol
// behaviour (the stream loops of pkg/server/sotw and pkg/server/delta in
// ordered ADS mode: stale nonces ignored, responses sent in the order the
// cache produces them, a type's pending response dropped when a newer
// request of that type supersedes it) and is built for many idle streams:
//
//   - A stream is two parked goroutines, not three or four: gRPC's handler,
//     waiting for the stream's end, and a receiver blocked in Recv. Requests
//     and responses are handled by a worker goroutine that exists only
//     while the stream has work, so the deep stacks of translation lookups,
//     marshalling and logging are not kept by thousands of idle streams.
//   - Every stream's watches answer on one shared channel per protocol; a
//     dispatcher hands each response to its stream's queue (a stream is
//     found by the node object its requests carry). The dispatcher never
//     blocks, so a cache answering watches under its lock never waits for
//     a slow client.
//   - The per-type state a stream keeps (the names it subscribed to, the
//     names and versions it was sent) is interned: streams of one group
//     hold the same read-only maps (see interner).
//
// The per-type services (LDS, RDS, CDS, EDS, SDS streams) are rare and
// stay on go-control-plane's server.
type ads struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer

	s     *Server
	cache cache.ConfigWatcher
	ctx   context.Context
	ids   atomic.Int64

	sotwResponses  chan cache.Response
	deltaResponses chan cache.DeltaResponse

	start sync.Once // the dispatcher, with the first stream

	mu       sync.RWMutex
	streams  map[*corev3.Node]*adsStream // by the node its cache requests carry
	active   int                         // streams between open and the end of serve
	stopping bool                        // ctx ended: no new stream
	idle     chan struct{}               // closed once stopping with no stream: the dispatcher ends

	intern *interner
}

// responseBuffer is the shared response channels' capacity: a cache
// answering many watches at once (one Update reaching thousands of nodes)
// hands them over without a context switch per response.
const responseBuffer = 1024

// maxPendingRequests is how many received requests a stream queues while
// its worker is busy (for instance blocked sending to a client that stopped
// reading); then its receiver stops reading and gRPC's flow control holds
// the client back, as go-control-plane's unbuffered request channel did.
const maxPendingRequests = 16

// maxTypes bounds the resource types one stream may ask for: Envoy and
// gRPC ask for at most six; each costs a watch and a retained request.
const maxTypes = 16

func newADS(ctx context.Context, s *Server, c cache.ConfigWatcher) *ads {
	a := &ads{
		s:              s,
		cache:          c,
		ctx:            ctx,
		sotwResponses:  make(chan cache.Response, responseBuffer),
		deltaResponses: make(chan cache.DeltaResponse, responseBuffer),
		streams:        map[*corev3.Node]*adsStream{},
		idle:           make(chan struct{}),
		intern:         newInterner(),
	}
	return a
}

// run starts the dispatcher, and ends it once ctx has ended and every
// stream is gone (their watches cancelled, so no cache answers any more).
func (a *ads) run() {
	go a.dispatch()
	go func() {
		<-a.ctx.Done()
		a.mu.Lock()
		a.stopping = true
		if a.active == 0 {
			close(a.idle)
		}
		a.mu.Unlock()
	}()
}

// dispatch queues each response on its stream; responses for a stream that
// has ended are dropped.
func (a *ads) dispatch() {
	for {
		select {
		case <-a.idle:
			return
		case r := <-a.sotwResponses:
			if st := a.stream(r.GetRequest().GetNode()); st != nil {
				st.enqueue(event{sotwResp: r})
			}
		case r := <-a.deltaResponses:
			if st := a.stream(r.GetDeltaRequest().GetNode()); st != nil {
				st.enqueue(event{deltaResp: r})
			}
		}
	}
}

func (a *ads) stream(n *corev3.Node) *adsStream {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.streams[n]
}

// StreamAggregatedResources serves a state-of-the-world ADS stream.
func (a *ads) StreamAggregatedResources(ss discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := a.open(ss.Context(), false)
	if st == nil {
		return errStopping
	}
	st.sendSotw = ss.Send
	go st.receive(func() (event, error) {
		req, err := ss.Recv()
		return event{sotwReq: req}, err
	})
	return a.serve(st)
}

// DeltaAggregatedResources serves an incremental (delta) ADS stream.
func (a *ads) DeltaAggregatedResources(ss discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	st := a.open(ss.Context(), true)
	if st == nil {
		return errStopping
	}
	st.sendDelta = ss.Send
	go st.receive(func() (event, error) {
		req, err := ss.Recv()
		return event{deltaReq: req}, err
	})
	return a.serve(st)
}

// errStopping answers a stream opened while the server stops.
var errStopping = status.Error(codes.Unavailable, "the control plane is stopping; reconnect")

// open registers a new stream, nil when the server is stopping.
func (a *ads) open(ctx context.Context, delta bool) *adsStream {
	a.start.Do(a.run)
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		return nil
	}
	a.active++
	a.mu.Unlock()
	st := &adsStream{a: a, ctx: ctx, key: streamKey{id: a.ids.Add(1), delta: delta, ads: true}, done: make(chan struct{})}
	st.room.L = &st.mu
	a.s.open(st.key)
	return st
}

// serve parks gRPC's handler goroutine until the stream ends: the client
// went away, the server stops, or handling failed. It returns once the
// worker is out of Send (gRPC forbids sending after the handler returns)
// with the stream's watches cancelled.
func (a *ads) serve(st *adsStream) error {
	select {
	case <-st.ctx.Done():
	case <-a.ctx.Done():
	case <-st.done:
	}
	st.mu.Lock()
	st.closed = true
	st.room.Broadcast() // a receiver waiting for room gives up
	var wait chan struct{}
	if st.running {
		wait = make(chan struct{})
		st.stopped = wait
	}
	st.queue = nil
	st.mu.Unlock()
	if wait != nil {
		<-wait
	}
	// The worker has stopped for good: its state is ours.
	for i := range st.watches {
		st.watches[i].stop()
	}
	a.mu.Lock()
	if st.cacheNode != nil {
		delete(a.streams, st.cacheNode)
	}
	a.active--
	if a.stopping && a.active == 0 {
		close(a.idle)
	}
	a.mu.Unlock()
	a.s.close(st.key)
	st.mu.Lock()
	err := st.err
	st.mu.Unlock()
	return err
}

// event is one unit of a stream's work: a request received or a response
// from a watch.
type event struct {
	sotwReq   *discovery.DiscoveryRequest
	deltaReq  *discovery.DeltaDiscoveryRequest
	sotwResp  cache.Response
	deltaResp cache.DeltaResponse
}

// adsStream is one ADS stream. Its worker goroutine runs while queue is not
// empty and is the only one to touch the fields below the worker comment.
type adsStream struct {
	a         *ads
	ctx       context.Context
	key       streamKey
	sendSotw  func(*discovery.DiscoveryResponse) error
	sendDelta func(*discovery.DeltaDiscoveryResponse) error

	mu      sync.Mutex
	queue   []event
	pending int           // requests in queue
	room    sync.Cond     // signalled when pending drops or the stream closes
	running bool          // a worker is draining queue
	closed  bool          // the stream ended: no more work
	stopped chan struct{} // closed by the worker when it stops after closed
	done    chan struct{} // closed on the first failure or the end of input
	err     error         // the failure the stream ends with

	// Worker-owned.
	cacheNode *corev3.Node // the node the cache sees: ID and cluster only
	nonce     int64
	watches   []adsWatch
}

// adsWatch is a stream's state for one type.
type adsWatch struct {
	typeURL string
	cancel  func()
	sub     *subscription
	nonce   string // of the last response sent
	// The request of the open watch; a response created for another
	// request of the type is stale.
	sotwReq  *discovery.DiscoveryRequest
	deltaReq *discovery.DeltaDiscoveryRequest
}

// enqueue adds work and starts the worker if none runs.
func (st *adsStream) enqueue(e event) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.queue = append(st.queue, e)
	start := !st.running
	st.running = true
	st.mu.Unlock()
	if start {
		go st.work()
	}
}

// receive is the stream's receiver: it queues what recv returns until the
// client's input ends or the stream closes.
func (st *adsStream) receive(recv func() (event, error)) {
	for {
		e, err := recv()
		if err != nil {
			st.fail(nil)
			return
		}
		if !st.request(e) {
			return
		}
	}
}

// request queues a received request, first waiting while maxPendingRequests
// are queued. It reports false when the stream has closed.
func (st *adsStream) request(e event) bool {
	st.mu.Lock()
	for st.pending >= maxPendingRequests && !st.closed {
		st.room.Wait()
	}
	if st.closed {
		st.mu.Unlock()
		return false
	}
	st.pending++
	st.mu.Unlock()
	st.enqueue(e)
	return true
}

// fail ends the stream with err (nil: the client's input ended); the first
// call wins.
func (st *adsStream) fail(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	select {
	case <-st.done:
	default:
		st.err = err
		close(st.done)
	}
}

// work drains the queue in order, then exits.
func (st *adsStream) work() {
	for {
		st.mu.Lock()
		if st.closed || len(st.queue) == 0 {
			st.running = false
			if st.stopped != nil {
				close(st.stopped)
				st.stopped = nil
			}
			if len(st.queue) == 0 {
				st.queue = nil // let an idle stream's backing array go
			}
			st.mu.Unlock()
			return
		}
		e := st.queue[0]
		st.queue[0] = event{}
		st.queue = st.queue[1:]
		if e.sotwReq != nil || e.deltaReq != nil {
			st.pending--
			st.room.Signal()
		}
		st.mu.Unlock()

		var err error
		switch {
		case e.sotwReq != nil:
			err = st.sotwRequest(e.sotwReq)
		case e.deltaReq != nil:
			err = st.deltaRequest(e.deltaReq)
		case e.sotwResp != nil:
			err = st.sotwResponse(e.sotwResp)
		case e.deltaResp != nil:
			err = st.deltaResponse(e.deltaResp)
		}
		if err != nil {
			st.fail(err)
			st.mu.Lock()
			st.closed = true // nothing more is handled; serve finishes up
			st.mu.Unlock()
		}
	}
}

// watch returns the stream's state for typeURL, nil if it has none.
func (st *adsStream) watch(typeURL string) *adsWatch {
	for i := range st.watches {
		if st.watches[i].typeURL == typeURL {
			return &st.watches[i]
		}
	}
	return nil
}

// addWatch adds the state of a type the stream had not asked for. A
// sidecar asks for the five known types: room for them at once.
func (st *adsStream) addWatch(typeURL string) (*adsWatch, error) {
	if len(st.watches) == maxTypes {
		return nil, status.Errorf(codes.InvalidArgument, "more than %d resource types asked for on one stream (%s)", maxTypes, typeURL)
	}
	if st.watches == nil {
		st.watches = make([]adsWatch, 0, numTypes-1)
	}
	st.watches = append(st.watches, adsWatch{typeURL: typeURL})
	return &st.watches[len(st.watches)-1], nil
}

// nodeOf is the node to identify a request by: the client's own on its
// first request, cacheNode on later ones that omit it. The cache is handed
// cacheNode (ID and cluster; a stream's node cannot change: the first
// request identified it), which also finds the stream for the dispatcher.
func (st *adsStream) nodeOf(n *corev3.Node) *corev3.Node {
	if n == nil {
		return st.cacheNode
	}
	if st.cacheNode == nil {
		st.cacheNode = &corev3.Node{Id: n.GetId(), Cluster: n.GetCluster()}
		st.a.mu.Lock()
		st.a.streams[st.cacheNode] = st
		st.a.mu.Unlock()
	}
	return n
}

// begin does what every request needs before its protocol's handling: the
// node (the first request's identifies the stream), the type (required
// in ADS; the program's copy of a known one), and the hooks' accounting of
// the request and the ACK or NACK it carries (rejected: see
// Server.request).
func (st *adsStream) begin(node *corev3.Node, typeURL, nonce, version string, detail *rpcstatus.Status) (canonical, rejected string, err error) {
	node = st.nodeOf(node)
	if typeURL == "" {
		return "", "", status.Error(codes.InvalidArgument, "type URL is required for ADS")
	}
	typeURL = canonicalType(typeURL)
	rejected, err = st.a.s.request(st.key, node, typeURL, nonce, version, detail)
	return typeURL, rejected, err
}

// sotwRequest handles one state-of-the-world request as go-control-plane's
// ordered ADS loop does.
func (st *adsStream) sotwRequest(req *discovery.DiscoveryRequest) error {
	typeURL, rejected, err := st.begin(req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail())
	if err != nil {
		return err
	}
	if rejected != "" {
		req.VersionInfo = rejected
	}
	// What the cache keeps of the request: no node beyond its ID, no
	// error detail.
	req.TypeUrl, req.Node, req.ErrorDetail = typeURL, st.cacheNode, nil

	w := st.watch(typeURL)
	if w == nil {
		if w, err = st.addWatch(typeURL); err != nil {
			return err
		}
		w.sub = st.a.intern.sotwSubscription(req.GetResourceNames())
	} else {
		if w.nonce != "" && req.GetResponseNonce() != w.nonce {
			// A request answering an older response: ignored, as the
			// protocol says (the client will answer the newer one).
			return nil
		}
		w.stop()
		w.sub = st.a.intern.resubscribe(w.sub, req.GetResourceNames())
	}
	w.sotwReq = req
	cancel, err := st.a.cache.CreateWatch(req, w.sub, st.a.sotwResponses)
	if err != nil {
		return err
	}
	w.cancel = cancel
	return nil
}

// sotwResponse sends a response of the type's open watch; one for a
// request since superseded is dropped (the new watch answers instead).
func (st *adsStream) sotwResponse(r cache.Response) error {
	w := st.watch(r.GetRequest().GetTypeUrl())
	if w == nil || w.sotwReq != r.GetRequest() {
		return nil
	}
	out, err := r.GetDiscoveryResponse()
	if err != nil {
		return status.Errorf(codes.Internal, "building the %s response: %v", w.typeURL, err)
	}
	out.Nonce = st.answered(w, r.GetReturnedResources(), out.GetVersionInfo())
	if err := st.sendSotw(out); err != nil {
		return status.Errorf(codes.Unavailable, "sending the %s response: %v", w.typeURL, err)
	}
	return nil
}

// answered records that w's watch was answered — the client now has
// returned — and returns the response's nonce.
func (st *adsStream) answered(w *adsWatch, returned map[string]string, version string) string {
	st.nonce++
	nonce := strconv.FormatInt(st.nonce, 10)
	w.sub = st.a.intern.returned(w.sub, returned)
	w.nonce = nonce
	w.cancel = nil // a watch answers once
	st.a.s.response(st.key, w.typeURL, nonce, version)
	return nonce
}

// stop cancels the type's open watch, if any, before it is replaced.
func (w *adsWatch) stop() {
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
}

// deltaRequest handles one delta request as go-control-plane's delta loop
// does.
func (st *adsStream) deltaRequest(req *discovery.DeltaDiscoveryRequest) error {
	typeURL, _, err := st.begin(req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail())
	if err != nil {
		return err
	}
	req.TypeUrl, req.Node, req.ErrorDetail = typeURL, st.cacheNode, nil

	w := st.watch(typeURL)
	if w == nil {
		if w, err = st.addWatch(typeURL); err != nil {
			return err
		}
		w.sub = st.a.intern.deltaSubscription(req.GetResourceNamesSubscribe(),
			req.GetResourceNamesUnsubscribe(), req.GetInitialResourceVersions())
	} else {
		w.stop()
		w.sub = st.a.intern.update(w.sub, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	}
	// The subscription holds them now.
	req.InitialResourceVersions, req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe = nil, nil, nil
	w.deltaReq = req
	cancel, err := st.a.cache.CreateDeltaWatch(req, w.sub, st.a.deltaResponses)
	if err != nil {
		return err
	}
	w.cancel = cancel
	return nil
}

// deltaResponse sends a delta response of the type's open watch.
func (st *adsStream) deltaResponse(r cache.DeltaResponse) error {
	w := st.watch(r.GetDeltaRequest().GetTypeUrl())
	if w == nil || w.deltaReq != r.GetDeltaRequest() {
		return nil
	}
	out, err := r.GetDeltaDiscoveryResponse()
	if err != nil {
		return status.Errorf(codes.Internal, "building the %s response: %v", w.typeURL, err)
	}
	out.Nonce = st.answered(w, r.GetNextVersionMap(), out.GetSystemVersionInfo())
	if err := st.sendDelta(out); err != nil {
		return status.Errorf(codes.Unavailable, "sending the %s response: %v", w.typeURL, err)
	}
	return nil
}

// canonicalType is typeURL, or the same type URL held once by the program
// for the types it knows: a stream keeps a request per type for as long as
// it lives, and each arrives with its own copy.
func canonicalType(typeURL string) string {
	if c := typeURLs[typeOf(typeURL)]; c != "" {
		return c
	}
	return typeURL
}
