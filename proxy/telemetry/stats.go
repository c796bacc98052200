package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrorKind classifies an upstream request that ended without a response.
type ErrorKind int

// Upstream error kinds; the label values are bounded to this set.
const (
	ErrConnectFailure ErrorKind = iota // connect_failure
	ErrReset                           // reset
	ErrTimeout                         // timeout
	ErrNoHealthy                       // no_healthy
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"connect_failure", "reset", "timeout", "no_healthy"}

// String returns the kind's label value.
func (k ErrorKind) String() string {
	if k < 0 || k >= numErrorKinds {
		return "unknown"
	}
	return errorKindNames[k]
}

// ListenerStats are one listener's downstream metrics, already bound to
// their labels. The zero value is not usable; get one from Metrics.Listener.
type ListenerStats struct {
	rq       [len(codeClasses)]prometheus.Counter // by status/100; [0] unused
	duration prometheus.Observer
	cx       prometheus.Counter
	cxActive prometheus.Gauge
}

// RecordRequest counts one completed downstream request. A status outside
// 100..599 (0: nothing was sent) is not counted in any code class, but its
// duration is still observed.
func (s *ListenerStats) RecordRequest(status int, d time.Duration) {
	if c := status / 100; status >= 100 && c < len(s.rq) {
		s.rq[c].Inc()
	}
	s.duration.Observe(d.Seconds())
}

// ConnOpened counts an accepted connection; pair it with ConnClosed.
func (s *ListenerStats) ConnOpened() {
	s.cx.Inc()
	s.cxActive.Inc()
}

// ConnClosed marks a connection counted by ConnOpened as closed.
func (s *ListenerStats) ConnClosed() { s.cxActive.Dec() }

// ClusterStats are one cluster's upstream metrics, already bound to their
// labels. The zero value is not usable; get one from Metrics.Cluster.
type ClusterStats struct {
	rq          [len(codeClasses)]prometheus.Counter // by status/100; [0] unused
	errs        [numErrorKinds]prometheus.Counter
	duration    prometheus.Observer
	connectFail prometheus.Counter
	active      prometheus.Gauge
	retry       prometheus.Counter
}

// RequestStarted marks an upstream request in flight; pair it with
// RequestDone or RequestFailed.
func (s *ClusterStats) RequestStarted() { s.active.Inc() }

// RequestDone records an upstream request that got a response with status.
func (s *ClusterStats) RequestDone(status int, d time.Duration) {
	s.active.Dec()
	if c := status / 100; status >= 100 && c < len(s.rq) {
		s.rq[c].Inc()
	}
	s.duration.Observe(d.Seconds())
}

// RequestFailed records an upstream request started with RequestStarted
// that ended without a response.
func (s *ClusterStats) RequestFailed(kind ErrorKind) {
	s.active.Dec()
	s.Error(kind)
}

// Error counts a request failure that never became an in-flight request,
// such as ErrNoHealthy before any endpoint was picked.
func (s *ClusterStats) Error(kind ErrorKind) {
	if kind >= 0 && kind < numErrorKinds {
		s.errs[kind].Inc()
	}
}

// ConnectFailed counts one failed upstream connection attempt.
func (s *ClusterStats) ConnectFailed() { s.connectFail.Inc() }

// Retried counts one retry attempt.
func (s *ClusterStats) Retried() { s.retry.Inc() }
