package outlier

import (
	"strings"
	"testing"
	"time"
)

func TestConsecutive5xxEjectsAtThreshold(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10) // 10 % of 10 hosts: one ejection allowed
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		h := hosts[0]
		t0 := time.Now()

		report(d, h, 500, 4)
		wantEjected(t, d, h, false)
		if s := d.Stats(); s.EjectionsDetectedConsecutive5xx != 0 {
			t.Fatalf("detected after 4: %+v", s)
		}
		report(d, h, 503, 1)
		wantEjected(t, d, h, true)
		if h.Available() {
			t.Fatal("ejected host still Available")
		}
		info := d.Host(h)
		if info.EjectionCount != 1 || info.LastReason != ReasonConsecutive5xx ||
			!info.EjectedUntil.Equal(t0.Add(30*time.Second)) || info.HalfOpen {
			t.Fatalf("info = %+v", info)
		}
		want := Stats{EjectionsActive: 1, EjectionsTotal: 1, EjectionsEnforcedTotal: 1,
			EjectionsDetectedConsecutive5xx: 1, EjectionsEnforcedConsecutive5xx: 1,
			// the 503 was the first gateway failure: not detected
		}
		if s := d.Stats(); s != want {
			t.Fatalf("stats = %+v\nwant %+v", s, want)
		}
		// Results of requests that were in flight count for nothing.
		report(d, h, 500, 20)
		if s := d.Stats(); s != want {
			t.Fatalf("stats after more 5xx on an ejected host = %+v", s)
		}
		for _, o := range hosts[1:] {
			wantEjected(t, d, o, false)
		}
	})
}

func TestSuccessResetsConsecutive(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		h := hosts[0]
		for _, ok := range []int{200, 404, 302} { // anything but 5xx is a success
			report(d, h, 500, 4)
			report(d, h, ok, 1)
		}
		report(d, h, 500, 4)
		wantEjected(t, d, h, false)
		report(d, h, 500, 1)
		wantEjected(t, d, h, true)
	})
}

func TestConsecutiveGatewayFailure(t *testing.T) {
	t.Run("default enforcing 0 detects only", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(10)
			cfg := DefaultConfig()
			cfg.Consecutive5xx = 0 // off: only the gateway detector sees these
			d := start(t, cfg, hosts)
			defer d.Close()
			report(d, hosts[0], 502, 10)
			wantEjected(t, d, hosts[0], false)
			s := d.Stats()
			if s.EjectionsDetectedConsecutiveGatewayFailure != 2 || s.EjectionsEnforcedConsecutiveGatewayFailure != 0 ||
				s.EjectionsEnforcedTotal != 0 || s.EjectionsTotal != 0 || s.EjectionsDetectedConsecutive5xx != 0 {
				t.Fatalf("stats = %+v", s)
			}
		})
	})
	t.Run("enforced; a non-gateway 5xx resets the run", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(10)
			cfg := DefaultConfig()
			cfg.Consecutive5xx = 100
			cfg.EnforcingConsecutiveGatewayFailure = 100
			d := start(t, cfg, hosts)
			defer d.Close()
			h := hosts[0]
			report(d, h, 503, 4)
			report(d, h, 500, 1)
			report(d, h, 504, 4)
			wantEjected(t, d, h, false)
			report(d, h, 502, 1)
			wantEjected(t, d, h, true)
			if r := d.Host(h).LastReason; r != ReasonConsecutiveGatewayFailure {
				t.Fatalf("reason = %v", r)
			}
			s := d.Stats()
			if s.EjectionsEnforcedConsecutiveGatewayFailure != 1 || s.EjectionsTotal != 0 {
				t.Fatalf("stats = %+v", s)
			}
		})
	})
}

func TestLocalOriginWithoutSplit(t *testing.T) {
	for _, l := range []LocalFailure{LocalConnectFailure, LocalTimeout, LocalReset} {
		t.Run(l.String(), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				hosts := testHosts(10)
				d := start(t, DefaultConfig(), hosts)
				defer d.Close()
				h := hosts[0]
				reportLocal(d, h, l, 4)
				wantEjected(t, d, h, false)
				reportLocal(d, h, l, 1)
				wantEjected(t, d, h, true)
				if r := d.Host(h).LastReason; r != ReasonConsecutive5xx {
					t.Fatalf("reason = %v", r)
				}
				// 503/504 are gateway failures: detected, not enforced.
				s := d.Stats()
				if s.EjectionsDetectedConsecutiveGatewayFailure != 1 || s.EjectionsEnforcedConsecutiveGatewayFailure != 0 ||
					s.EjectionsDetectedConsecutiveLocalOriginFailure != 0 {
					t.Fatalf("stats = %+v", s)
				}
			})
		})
	}
}

func TestLocalOriginWithSplit(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.SplitExternalLocalOriginErrors = true
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		defer d.Close()

		// Local failures have their own counter; a response (even a 5xx)
		// is a local-origin success and resets it.
		a := hosts[0]
		reportLocal(d, a, LocalConnectFailure, 4)
		report(d, a, 500, 1)
		reportLocal(d, a, LocalTimeout, 4)
		wantEjected(t, d, a, false)
		reportLocal(d, a, LocalReset, 1)
		wantEjected(t, d, a, true)
		if r := d.Host(a).LastReason; r != ReasonConsecutiveLocalOriginFailure {
			t.Fatalf("reason = %v", r)
		}

		// Local failures neither count as 5xx nor reset the 5xx run.
		b := hosts[1]
		report(d, b, 500, 4)
		reportLocal(d, b, LocalTimeout, 4)
		wantEjected(t, d, b, false)
		report(d, b, 500, 1)
		wantEjected(t, d, b, true)
		if r := d.Host(b).LastReason; r != ReasonConsecutive5xx {
			t.Fatalf("reason = %v", r)
		}

		s := d.Stats()
		if s.EjectionsDetectedConsecutiveLocalOriginFailure != 1 || s.EjectionsEnforcedConsecutiveLocalOriginFailure != 1 ||
			s.EjectionsDetectedConsecutive5xx != 1 || s.EjectionsDetectedConsecutiveGatewayFailure != 0 ||
			s.EjectionsActive != 2 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestZeroOutcomeAndUnknownHostIgnored(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		for range 10 {
			d.Report(hosts[0], Outcome{}) // e.g. the client went away
			d.Report(testHosts(1)[0], Outcome{Status: 500})
			d.Report(nil, Outcome{Status: 500})
		}
		report(d, hosts[0], 500, 4)
		wantEjected(t, d, hosts[0], false) // the zero outcomes did not count
	})
}

func TestEnforcementDice(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.EnforcingConsecutive5xx = 30
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		withDice(d, func(int) int { return 30 }, nil) // 30 is not < 30
		report(d, hosts[0], 500, 5)
		wantEjected(t, d, hosts[0], false)
		withDice(d, func(int) int { return 29 }, nil)
		report(d, hosts[0], 500, 5) // the counter was reset at detection
		wantEjected(t, d, hosts[0], true)
		if s := d.Stats(); s.EjectionsDetectedConsecutive5xx != 2 || s.EjectionsEnforcedConsecutive5xx != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestMaxEjectionPercent(t *testing.T) {
	t.Run("overflow", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(10)
			d := start(t, DefaultConfig(), hosts)
			defer d.Close()
			report(d, hosts[0], 500, 5)
			report(d, hosts[1], 500, 5)
			wantEjected(t, d, hosts[0], true)
			wantEjected(t, d, hosts[1], false)
			want := Stats{EjectionsActive: 1, EjectionsTotal: 1, EjectionsOverflow: 1, EjectionsEnforcedTotal: 1,
				EjectionsDetectedConsecutive5xx: 2, EjectionsEnforcedConsecutive5xx: 1}
			if s := d.Stats(); s != want {
				t.Fatalf("stats = %+v\nwant %+v", s, want)
			}
			// The run was reset at detection: five more are needed.
			report(d, hosts[1], 500, 4)
			if s := d.Stats(); s.EjectionsOverflow != 1 {
				t.Fatalf("overflow = %d", s.EjectionsOverflow)
			}
		})
	})
	t.Run("fewer than 10 hosts eject nothing by default", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(5)
			d := start(t, DefaultConfig(), hosts)
			defer d.Close()
			report(d, hosts[0], 500, 5)
			wantEjected(t, d, hosts[0], false)
			if s := d.Stats(); s.EjectionsOverflow != 1 {
				t.Fatalf("stats = %+v", s)
			}
		})
	})
	t.Run("always_eject_one_host", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			hosts := testHosts(5)
			cfg := DefaultConfig()
			cfg.AlwaysEjectOneHost = true
			cfg.MaxEjectionPercent = 0
			d := start(t, cfg, hosts)
			defer d.Close()
			report(d, hosts[0], 500, 5)
			report(d, hosts[1], 500, 5)
			wantEjected(t, d, hosts[0], true)
			wantEjected(t, d, hosts[1], false)
			if s := d.Stats(); s.EjectionsOverflow != 1 || s.EjectionsActive != 1 {
				t.Fatalf("stats = %+v", s)
			}
		})
	})
}

func TestEjectionLogged(t *testing.T) {
	bubble(t, func(t *testing.T) {
		var buf logBuffer
		hosts := testHosts(10)
		d := New(DefaultConfig(), bufferLogger(&buf))
		defer d.Close()
		d.SetHosts(hosts)
		report(d, hosts[2], 500, 5)
		sleep(30 * time.Second)
		out := buf.String()
		for _, want := range []string{
			"host ejected: host=10.0.0.3:8080 reason=CONSECUTIVE_5XX ejection_time=30s ejections=1",
			"host un-ejected: host=10.0.0.3:8080 reason=CONSECUTIVE_5XX ejected_for=30s",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		if n := strings.Count(out, "\n"); n != 2 {
			t.Errorf("want 2 info lines, got %d:\n%s", n, out)
		}
	})
}
