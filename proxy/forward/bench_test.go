package forward

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// The cost of a retry policy when nothing fails, against the path without
// one: client, proxy and backend in one process, so compare the variants
// with each other only.
func BenchmarkForward(b *testing.B) {
	t := &testing.T{}
	echo := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "hello")
	})
	policy := &router.RetryPolicy{On: router.Retry5xx | router.RetryConnectFailure, NumRetries: 2}
	for _, bc := range []struct {
		name  string
		retry *router.RetryPolicy
		body  []byte
	}{
		{"GET/no-retry", nil, nil},
		{"GET/retry", policy, nil},
		{"GET/retry+per-try", &router.RetryPolicy{On: router.Retry5xx, NumRetries: 2, PerTryTimeout: 5 * time.Second}, nil},
		{"POST-4KiB/no-retry", nil, make([]byte, 4<<10)},
		{"POST-4KiB/retry", policy, make([]byte, 4<<10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			up := newTestUpstream(t, echo)
			url, results := startProxy(t, func(r *http.Request, p *Params) {
				p.Upstream = up
				p.Retry = bc.retry
			})
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var rd io.Reader
				method := "GET"
				if bc.body != nil {
					rd, method = bytes.NewReader(bc.body), "POST"
				}
				req, _ := http.NewRequest(method, url, rd)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				<-results
			}
		})
	}
}
