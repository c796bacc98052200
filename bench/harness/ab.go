package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// runAB runs one repetition of a gRPC unary scenario (Run gives it no
// other) against the A/B target: each open-loop rate is split between the
// plaintext path and the mTLS path, half each at the same time, the mTLS
// schedule half a period behind the plaintext one so their sends
// alternate; the sidecars carry the rate in all, as the sequential targets
// do. The two results are recorded as targets report.ABPlaintext and
// report.ABMTLS at the whole rate, paired by repetition. Closed loop is
// not run: two saturating loads would only measure each other.
func runAB(ctx context.Context, cfg *Config, sc Scenario, t *targets.Target, rep int) ([]report.Measurement, error) {
	plain, err := loadgen.NewClient(sc.loadTarget(t.Endpoints.GRPC))
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	mtls, err := loadgen.NewClient(sc.loadTarget(t.Endpoints.GRPCMTLS))
	if err != nil {
		return nil, err
	}
	defer mtls.Close()
	if sc.Warmup > 0 {
		warm := loadgen.Options{Mode: loadgen.ClosedLoop, Duration: sc.Warmup, Workers: sc.Workers}
		for _, c := range []loadgen.Client{plain, mtls} {
			if _, err := loadgen.Run(ctx, c, warm); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	var ms []report.Measurement
	for _, rate := range sc.OpenRates {
		opts := loadgen.Options{Mode: loadgen.OpenLoop, Rate: rate / 2, Duration: sc.OpenDuration, Workers: sc.Workers}
		var (
			wg   sync.WaitGroup
			res  [2]*loadgen.Result
			errs [2]error
			// One path's period is 2/rate: the other sends between.
			halfTick = time.Duration(float64(time.Second) / rate)
		)
		// The server sidecar's accepted connections around the run (both
		// listeners): with mTLS each is one handshake.
		var connsBefore int64 = -1
		if n, err := targets.DownstreamConns(ctx, t.Admin[len(t.Admin)-1]); err == nil {
			connsBefore = n
		}
		for i, c := range []loadgen.Client{plain, mtls} {
			wg.Go(func() {
				if i == 1 {
					time.Sleep(halfTick)
				}
				res[i], errs[i] = loadgen.Run(ctx, c, opts)
			})
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			return ms, err
		}
		var conns int64 = -1
		if n, err := targets.DownstreamConns(ctx, t.Admin[len(t.Admin)-1]); err == nil && connsBefore >= 0 {
			conns = n - connsBefore
		}
		for i, name := range []string{report.ABPlaintext, report.ABMTLS} {
			m := fromResult(sc.Name, name, rep, res[i])
			m.Rate = rate // what the sidecars carried; each path had half
			if conns >= 0 {
				m.LastHopConns, m.LastHopConnsKnown = conns, true // both paths together
			}
			ms = append(ms, m)
			cfg.Log.Info("run", "scenario", sc.Name, "target", name, "rep", rep, "mode", m.Mode,
				"rate", m.Rate, "rps", int(m.Throughput), "p50", m.P50, "p99", m.P99, "failed", m.Failed)
		}
	}
	return ms, nil
}
