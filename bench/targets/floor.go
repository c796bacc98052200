package targets

import "context"

// The floor targets are bench/floor's two instruments, built like
// outrigger's hot path: go-floor, the least an HTTP/1.1 proxy in Go does
// per request, and go-lean, that plus a proxy's per-request work done on
// the heads' bytes.
const (
	NameGoFloor = "go-floor"
	NameGoLean  = "go-lean"
)

// StartFloor runs `outrigger-bench floor` (bench is that binary) with
// GOMAXPROCS=1, in front of the backend's HTTP/1.1 address. It serves
// only the HTTP/1.1 scenarios' bodiless GETs.
func StartFloor(ctx context.Context, bench, dir string, up Upstream) (*Target, error) {
	return startFloor(ctx, bench, dir, up, NameGoFloor, nil,
		"GOMAXPROCS=1; a measuring instrument, not a proxy: bodiless keep-alive GETs relayed over pooled upstream "+
			"connections with outrigger's I/O (raw system calls, a yield before reads, one write per response), "+
			"no routing, header rewriting, timeouts, limits or statistics; HTTP/1.1 scenarios only")
}

// StartLean runs `outrigger-bench floor --lean` like StartFloor.
func StartLean(ctx context.Context, bench, dir string, up Upstream) (*Target, error) {
	return startFloor(ctx, bench, dir, up, NameGoLean, []string{"--lean"},
		"GOMAXPROCS=1; a measuring instrument, not a proxy: go-floor plus the per-request work outrigger does for "+
			"this configuration, on the heads' bytes (request and field validation, a prefix route, hop-by-hop "+
			"removal both ways, X-Forwarded-Proto, a generated X-Request-Id, Server replaced, round robin, an in-flight "+
			"limit, request and idle timeouts by a sweeper, counters and a latency histogram); HTTP/1.1 scenarios only")
}

func startFloor(ctx context.Context, bench, dir string, up Upstream, name string, flags []string, config string) (*Target, error) {
	d, err := mkdir(dir, name)
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	ep := Endpoints{HTTP1: loopback(ports[0])}
	argv := append([]string{bench, "floor", "--listen", ep.HTTP1, "--upstream", up.HTTP}, flags...)
	p, err := startReady(ctx, name, argv, []string{"GOMAXPROCS=1"}, d, []string{ep.HTTP1})
	if err != nil {
		return nil, err
	}
	return &Target{Name: name, Endpoints: ep, Procs: []*Process{p}, Version: "bench/floor", Config: config}, nil
}
