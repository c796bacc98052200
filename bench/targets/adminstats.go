package targets

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DownstreamConns reads the connections outrigger's listeners have accepted
// since start (outrigger_downstream_cx_total summed over listeners) from
// the admin /stats at adminAddr. For the server sidecar of a two-hop
// target these are the connections from the client sidecar: with mTLS,
// one handshake each.
func DownstreamConns(ctx context.Context, adminAddr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + adminAddr + "/stats?filter=^outrigger_downstream_cx_total$"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("targets: admin stats: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("targets: admin stats %s: %w", adminAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("targets: admin stats %s: %s", adminAddr, resp.Status)
	}
	return parseCounter(io.LimitReader(resp.Body, 1<<20), "outrigger_downstream_cx_total")
}

// parseCounter sums the lines "name{labels}: value" (or "name: value") of
// Envoy's text /stats for name; no such line is an error.
func parseCounter(r io.Reader, name string) (int64, error) {
	sc := bufio.NewScanner(r)
	var sum int64
	found := false
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if base, _, _ := strings.Cut(key, "{"); base != name {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return 0, fmt.Errorf("targets: admin stats line %q: %w", line, err)
		}
		sum += int64(v)
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("targets: admin stats: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("targets: admin stats have no %s", name)
	}
	return sum, nil
}
