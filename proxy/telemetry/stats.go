package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ListenerStats are one listener's per-request metrics, already bound to
// their labels. The zero value is not usable; get one from Metrics.Listener.
type ListenerStats struct {
	rq       [len(codeClasses)]prometheus.Counter // by status/100; [0] unused
	duration prometheus.Observer
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
