package outlier

import (
	"math"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// mixed reports n requests to h of which ok succeed, failures spread out so
// that no consecutive detector fires.
func mixed(d *Detector, h *lb.Host, n, ok int, fail Outcome) {
	acc := 0
	for range n {
		acc += ok
		if acc >= n { // Bresenham: ok successes evenly among n
			acc -= n
			d.Report(h, Outcome{Status: 200})
		} else {
			d.Report(h, fail)
		}
	}
}

// srConfig has room to eject one host of five.
func srConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxEjectionPercent = 20
	return cfg
}

func TestSuccessRateEjection(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		d := start(t, srConfig(), hosts)
		defer d.Close()
		t0 := time.Now()
		for _, h := range hosts[:4] {
			report(d, h, 200, 100)
		}
		mixed(d, hosts[4], 100, 50, Outcome{Status: 500})
		wantEjected(t, d, hosts[4], false) // nothing before the sweep

		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], true)
		info := d.Host(hosts[4])
		if info.LastReason != ReasonSuccessRate || info.SuccessRate != 50 ||
			!info.EjectedUntil.Equal(t0.Add(40*time.Second)) {
			t.Fatalf("info = %+v", info)
		}
		for _, h := range hosts[:4] {
			wantEjected(t, d, h, false)
			if r := d.Host(h).SuccessRate; r != 100 {
				t.Fatalf("%s: success rate %v", h.Address, r)
			}
		}
		want := Stats{EjectionsActive: 1, EjectionsTotal: 1, EjectionsEnforcedTotal: 1,
			EjectionsDetectedSuccessRate: 1, EjectionsEnforcedSuccessRate: 1}
		if s := d.Stats(); s != want {
			t.Fatalf("stats = %+v\nwant %+v", s, want)
		}
		// An interval without traffic: no rate.
		sleep(10 * time.Second)
		if r := d.Host(hosts[0]).SuccessRate; r != -1 {
			t.Fatalf("success rate after a quiet interval = %v, want -1", r)
		}
	})
}

func TestSuccessRateNeedsVolumeAndHosts(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		d := start(t, srConfig(), hosts)
		defer d.Close()
		for _, h := range hosts[:3] {
			report(d, h, 200, 100)
		}
		report(d, hosts[3], 200, 99) // below success_rate_request_volume
		mixed(d, hosts[4], 100, 50, Outcome{Status: 500})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], false) // 4 hosts with volume < minimum 5
		// Rates are still reported for hosts with min(100, 50) requests.
		if r := d.Host(hosts[3]).SuccessRate; r != 100 {
			t.Fatalf("rate of the 99-request host = %v", r)
		}
		if r := d.Host(hosts[4]).SuccessRate; r != 50 {
			t.Fatalf("rate = %v", r)
		}
		if s := d.Stats(); s.EjectionsDetectedSuccessRate != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestSuccessRateNotEnforced(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		cfg := srConfig()
		cfg.EnforcingSuccessRate = 0
		d := start(t, cfg, hosts)
		defer d.Close()
		for _, h := range hosts[:4] {
			report(d, h, 200, 100)
		}
		mixed(d, hosts[4], 100, 50, Outcome{Status: 503})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], false)
		if s := d.Stats(); s.EjectionsDetectedSuccessRate != 1 || s.EjectionsEnforcedTotal != 0 || s.EjectionsTotal != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestFailurePercentage(t *testing.T) {
	for _, enforcing := range []uint32{0, 100} {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(5)
			cfg := srConfig()
			cfg.Consecutive5xx = 0
			cfg.EnforcingFailurePercentage = enforcing
			d := start(t, cfg, hosts)
			defer d.Close()
			// 60 requests: enough for failure percentage (50), not for
			// success rate (100).
			for _, h := range hosts[:4] {
				report(d, h, 200, 60)
			}
			mixed(d, hosts[4], 60, 9, Outcome{Status: 500}) // 85 % failures
			sleep(10 * time.Second)
			wantEjected(t, d, hosts[4], enforcing == 100)
			s := d.Stats()
			if s.EjectionsDetectedFailurePercentage != 1 || s.EjectionsDetectedSuccessRate != 0 ||
				s.EjectionsEnforcedFailurePercentage != uint64(enforcing/100) {
				t.Fatalf("enforcing %d: stats = %+v", enforcing, s)
			}
			if enforcing == 100 {
				if r := d.Host(hosts[4]).LastReason; r != ReasonFailurePercentage {
					t.Fatalf("reason = %v", r)
				}
			}
		})
	}
}

// Both detectors find the same host in one sweep: it is ejected once.
func TestSuccessRateAndFailurePercentageTogether(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		cfg := srConfig()
		cfg.Consecutive5xx = 0
		cfg.EnforcingFailurePercentage = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		for _, h := range hosts[:4] {
			report(d, h, 200, 100)
		}
		mixed(d, hosts[4], 100, 10, Outcome{Status: 500})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], true)
		s := d.Stats()
		if s.EjectionsDetectedSuccessRate != 1 || s.EjectionsDetectedFailurePercentage != 1 ||
			s.EjectionsEnforcedTotal != 1 || s.EjectionsActive != 1 || s.EjectionsOverflow != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestLocalOriginSuccessRate(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		cfg := srConfig()
		cfg.SplitExternalLocalOriginErrors = true
		d := start(t, cfg, hosts)
		defer d.Close()
		for _, h := range hosts[:4] {
			report(d, h, 200, 100)
		}
		// 50 responses, 50 connect failures: locally 50 %, externally
		// 100 % over only 50 requests.
		mixed(d, hosts[4], 100, 50, Outcome{Local: LocalConnectFailure})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], true)
		info := d.Host(hosts[4])
		if info.LastReason != ReasonLocalOriginSuccessRate || info.LocalOriginSuccessRate != 50 || info.SuccessRate != 100 {
			t.Fatalf("info = %+v", info)
		}
		s := d.Stats()
		if s.EjectionsDetectedLocalOriginSuccessRate != 1 || s.EjectionsEnforcedLocalOriginSuccessRate != 1 ||
			s.EjectionsDetectedSuccessRate != 0 || s.EjectionsTotal != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestLocalOriginFailurePercentage(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(5)
		cfg := srConfig()
		cfg.SplitExternalLocalOriginErrors = true
		cfg.ConsecutiveLocalOriginFailure = 0
		cfg.EnforcingLocalOriginSuccessRate = 0
		cfg.EnforcingFailurePercentageLocalOrigin = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		for _, h := range hosts[:4] {
			report(d, h, 200, 60)
		}
		mixed(d, hosts[4], 60, 6, Outcome{Local: LocalTimeout})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[4], true)
		if r := d.Host(hosts[4]).LastReason; r != ReasonLocalOriginFailurePercentage {
			t.Fatalf("reason = %v", r)
		}
		if s := d.Stats(); s.EjectionsEnforcedLocalOriginFailurePercentage != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestSRThreshold(t *testing.T) {
	hosts := []rated{{rate: 50}, {rate: 100}, {rate: 100}, {rate: 100}, {rate: 100}}
	mean, th := srThreshold(hosts, 450, 1.9)
	if mean != 90 || math.Abs(th-52) > 1e-9 {
		t.Fatalf("mean %v threshold %v, want 90 and 52 (Envoy's example)", mean, th)
	}
}
