package server_test

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"
)

// The proxy benchmarks run a client, the proxy and a tiny backend in one
// process. Compare Proxy* against Direct* from the same run: the difference
// in allocs/op and ns/op is what one hop through the proxy adds. The
// "p50-ns" metric is the median of per-request latencies.

func tinyBackend(b *testing.B) string {
	return backend(&testing.T{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	}))
}

func benchGet(b *testing.B, c *http.Client, url string) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

func benchProxy(b *testing.B, up string, clusterExtra string) string {
	t := &testing.T{}
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", clusterExtra, up)}.String())
	b.Cleanup(func() { p.stop(t) })
	return p.addr["ingress"]
}

func BenchmarkDirectHTTP1(b *testing.B) {
	up := tinyBackend(b)
	benchGet(b, h1Client(), "http://"+up+"/")
}

func BenchmarkProxyHTTP1(b *testing.B) {
	addr := benchProxy(b, tinyBackend(b), "")
	benchGet(b, h1Client(), "http://"+addr+"/")
}

func BenchmarkDirectH2C(b *testing.B) {
	up := tinyBackend(b)
	benchGet(b, h2cClient(), "http://"+up+"/")
}

func BenchmarkProxyH2C(b *testing.B) {
	addr := benchProxy(b, tinyBackend(b), h2cOptions)
	benchGet(b, h2cClient(), "http://"+addr+"/")
}
