package targets

import "context"

// NameGoFloor is the floor target: bench/floor, the least an HTTP/1.1 proxy
// in Go does per request, built like outrigger's hot path.
const NameGoFloor = "go-floor"

// StartFloor runs `outrigger-bench floor` (bench is that binary) with
// GOMAXPROCS=1, in front of the backend's HTTP/1.1 address. It serves
// only the HTTP/1.1 scenarios' bodiless GETs.
func StartFloor(ctx context.Context, bench, dir string, up Upstream) (*Target, error) {
	d, err := mkdir(dir, NameGoFloor)
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	ep := Endpoints{HTTP1: loopback(ports[0])}
	argv := []string{bench, "floor", "--listen", ep.HTTP1, "--upstream", up.HTTP}
	p, err := startReady(ctx, NameGoFloor, argv, []string{"GOMAXPROCS=1"}, d, []string{ep.HTTP1})
	if err != nil {
		return nil, err
	}
	return &Target{
		Name: NameGoFloor, Endpoints: ep, Procs: []*Process{p}, Version: "bench/floor",
		Config: "GOMAXPROCS=1; a measuring instrument, not a proxy: bodiless keep-alive GETs relayed over pooled upstream " +
			"connections with outrigger's I/O (raw system calls, a yield before reads, one write per response), " +
			"no routing, header rewriting, timeouts, limits or statistics; HTTP/1.1 scenarios only",
	}, nil
}
