package outlier

import (
	"math"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// A host that fails its probe every time is ejected for 30s, 60s, 90s …
// up to max_ejection_time, and comes back on time each time.
func TestEjectionTimeGrowsToMax(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		h := hosts[0]
		report(d, h, 500, 5)
		for i := 1; i <= 13; i++ {
			want := min(time.Duration(i)*30*time.Second, 300*time.Second)
			info := d.Host(h)
			if got := info.EjectedUntil.Sub(time.Now()); got != want || info.EjectionCount != uint32(i) {
				t.Fatalf("ejection %d: lasts %v (count %d), want %v", i, got, info.EjectionCount, want)
			}
			sleep(want - time.Nanosecond)
			wantEjected(t, d, h, true)
			sleep(time.Nanosecond)
			wantEjected(t, d, h, false)
			if !d.Host(h).HalfOpen || !h.Available() {
				t.Fatalf("ejection %d: not back half-open on time: %+v", i, d.Host(h))
			}
			if a := d.Stats().EjectionsActive; a != 0 {
				t.Fatalf("ejections_active = %d while half-open", a)
			}
			d.Report(h, Outcome{Local: LocalTimeout}) // the probe fails
			wantEjected(t, d, h, true)
		}
		s := d.Stats()
		if s.EjectionsEnforcedConsecutive5xx != 14 || s.EjectionsDetectedConsecutive5xx != 14 || s.EjectionsActive != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestHalfOpenSuccessClosesAndMultiplierDecays(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts) // interval 10s, ticks at 10s, 20s, …
		defer d.Close()
		h := hosts[0]

		report(d, h, 500, 5) // t=0: ejected for 30s
		sleep(30 * time.Second)
		if !d.Host(h).HalfOpen {
			t.Fatalf("not half-open: %+v", d.Host(h))
		}
		report(d, h, 404, 1) // the probe passes: closed
		if info := d.Host(h); info.HalfOpen || info.Ejected {
			t.Fatalf("not closed: %+v", info)
		}
		// Counters were reset: it takes a full run again.
		report(d, h, 500, 4)
		wantEjected(t, d, h, false)
		report(d, h, 500, 1) // t=30s: second ejection, not decayed yet: 60s
		if got := d.Host(h).EjectedUntil.Sub(time.Now()); got != 60*time.Second {
			t.Fatalf("second ejection lasts %v, want 60s", got)
		}

		sleep(60 * time.Second) // t=90s: half-open, multiplier 2
		report(d, h, 200, 1)
		// Sweeps at 100s and 110s find it un-ejected for ≥ one interval:
		// the multiplier drops 2 → 1 → 0, so the next ejection is 30s again.
		sleep(20 * time.Second)
		report(d, h, 500, 5)
		if got := d.Host(h).EjectedUntil.Sub(time.Now()); got != 30*time.Second {
			t.Fatalf("ejection after decay lasts %v, want 30s", got)
		}
		sleep(30 * time.Second)
		report(d, h, 200, 1)
		sleep(10 * time.Second) // one decay step only: 1 → 0 … then 0 → 1 → 30s
		report(d, h, 500, 5)
		if got := d.Host(h).EjectedUntil.Sub(time.Now()); got != 30*time.Second {
			t.Fatalf("ejection lasts %v, want 30s", got)
		}
	})
}

func TestMultiplierDecaysOneStepPerInterval(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		h := hosts[0]
		report(d, h, 500, 5) // 30s, multiplier 1
		sleep(30 * time.Second)
		report(d, h, 500, 1) // probe fails: 60s, multiplier 2
		sleep(60 * time.Second)
		report(d, h, 500, 1) // probe fails: 90s, multiplier 3
		sleep(90 * time.Second)
		report(d, h, 200, 1) // t=180s: closed, multiplier 3
		sleep(10 * time.Second)
		// One sweep (190s) found it back for an interval: 3 → 2, so this
		// ejection is the third step again: 90s.
		report(d, h, 500, 5)
		if got := d.Host(h).EjectedUntil.Sub(time.Now()); got != 90*time.Second {
			t.Fatalf("ejection lasts %v, want 90s", got)
		}
	})
}

// The timer, not the interval sweep, brings a host back: with a 1h
// interval it still returns after 30s.
func TestUnejectWithoutSweep(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.Interval = time.Hour
		d := start(t, cfg, hosts)
		defer d.Close()
		report(d, hosts[0], 500, 5)
		sleep(30 * time.Second)
		if !hosts[0].Available() {
			t.Fatal("still ejected after 30s")
		}
	})
}

func TestMaxEjectionTimeDefaultFollowsBase(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.BaseEjectionTime = 400 * time.Second // unset max: max(300s, base)
		d := start(t, cfg, hosts)
		defer d.Close()
		report(d, hosts[0], 500, 5)
		sleep(400 * time.Second)
		report(d, hosts[0], 500, 1)
		if got := d.Host(hosts[0]).EjectedUntil.Sub(time.Now()); got != 400*time.Second {
			t.Fatalf("second ejection lasts %v, want the 400s cap", got)
		}
	})
}

func TestJitter(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.MaxEjectionTimeJitter = 5 * time.Second
		d := start(t, cfg, hosts)
		defer d.Close()
		withDice(d, nil, func(n int64) int64 { return n - 1 })
		report(d, hosts[0], 500, 5)
		want := 35*time.Second - time.Nanosecond
		if got := d.Host(hosts[0]).EjectedUntil.Sub(time.Now()); got != want {
			t.Fatalf("ejection lasts %v, want %v", got, want)
		}
		sleep(want - time.Nanosecond)
		wantEjected(t, d, hosts[0], true)
		sleep(time.Nanosecond)
		wantEjected(t, d, hosts[0], false)
	})
}

// A failed probe whose new ejection max_ejection_percent refuses leaves the
// host in service, counting as usual.
func TestHalfOpenFailureOverflow(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		a, b := hosts[0], hosts[1]
		report(d, a, 500, 5)
		sleep(30 * time.Second) // a half-open
		report(d, b, 500, 5)    // b takes the one slot
		wantEjected(t, d, b, true)
		report(d, a, 500, 1) // a's probe fails, but there is no room
		wantEjected(t, d, a, false)
		if info := d.Host(a); info.HalfOpen {
			t.Fatalf("a still half-open: %+v", info)
		}
		s := d.Stats()
		if s.EjectionsOverflow != 1 || s.EjectionsActive != 1 {
			t.Fatalf("stats = %+v", s)
		}
		report(d, a, 500, 3)
		if s := d.Stats(); s.EjectionsOverflow != 1 {
			t.Fatalf("overflow after 4 in a row: %+v", s)
		}
		report(d, a, 500, 1) // the failed probe was the first of this run
		if s := d.Stats(); s.EjectionsOverflow != 2 {
			t.Fatalf("overflow after 5 in a row: %+v", s)
		}
	})
}

func TestHealthCheckPassed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		a, b := hosts[0], hosts[1]
		report(d, a, 500, 5)
		report(d, b, 500, 5)

		b.SetFlag(lb.FailedActiveHC, true) // still failing active checks
		d.HealthCheckPassed(b)
		wantEjected(t, d, b, true)

		d.HealthCheckPassed(a)
		wantEjected(t, d, a, false)
		if info := d.Host(a); info.HalfOpen {
			t.Fatalf("want closed, got %+v", info)
		}
		if s := d.Stats(); s.EjectionsActive != 1 {
			t.Fatalf("stats = %+v", s)
		}
		// Its old timer must not end the new (60s) ejection at 30s.
		report(d, a, 500, 5)
		sleep(30 * time.Second)
		wantEjected(t, d, a, true)
		d.HealthCheckPassed(hosts[2]) // never ejected: nothing happens
		wantEjected(t, d, hosts[2], false)
	})
}

func TestHealthCheckPassedDisabled(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.SuccessfulActiveHealthCheckUnejectHost = false
		d := start(t, cfg, hosts)
		defer d.Close()
		report(d, hosts[0], 500, 5)
		d.HealthCheckPassed(hosts[0])
		wantEjected(t, d, hosts[0], true)
	})
}

func TestGrowAndEjectionTime(t *testing.T) {
	s := time.Second
	tests := []struct {
		base, max time.Duration
		want      []time.Duration
	}{
		{30 * s, 300 * s, []time.Duration{30 * s, 60 * s, 90 * s, 120 * s, 150 * s, 180 * s, 210 * s, 240 * s, 270 * s, 300 * s, 300 * s, 300 * s}},
		{7 * s, 20 * s, []time.Duration{7 * s, 14 * s, 20 * s, 20 * s}},
		{10 * s, 10 * s, []time.Duration{10 * s, 10 * s}},
		{1 << 62, math.MaxInt64, []time.Duration{1 << 62, math.MaxInt64, math.MaxInt64, math.MaxInt64}},
	}
	for _, tt := range tests {
		var m uint32
		for i, want := range tt.want {
			m = grow(m, tt.base, tt.max)
			if got := ejectionTime(m, tt.base, tt.max); got != want {
				t.Errorf("base %v max %v: ejection %d lasts %v, want %v", tt.base, tt.max, i+1, got, want)
			}
		}
	}
	// Envoy stops growing once m × base ≥ max + base: 11 for 30s/300s.
	var m uint32
	for range 20 {
		m = grow(m, 30*s, 300*s)
	}
	if m != 11 {
		t.Errorf("multiplier settles at %d, want 11", m)
	}
	if got := addSat(math.MaxInt64-1, 5); got != math.MaxInt64 {
		t.Errorf("addSat = %v", got)
	}
}
