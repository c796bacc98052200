package outlier

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

func TestSetHostsKeepsAndForgets(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		keep, gone := hosts[0], hosts[1]
		report(d, keep, 500, 4)
		report(d, gone, 500, 5)
		wantEjected(t, d, gone, true)

		added := testHosts(1)[0]
		added.Address = "10.0.1.1:8080"
		next := append([]*lb.Host{added, keep, nil, keep}, hosts[2:]...) // nil and duplicates are skipped
		d.SetHosts(next)

		// A host that stays keeps its run of failures.
		report(d, keep, 500, 1)
		wantEjected(t, d, keep, true)
		// A removed host is forgotten: no longer active, not un-ejected
		// (nothing is cleared on it), not tracked.
		if s := d.Stats(); s.EjectionsActive != 1 {
			t.Fatalf("ejections_active = %d, want 1", s.EjectionsActive)
		}
		if !ejected(gone) {
			t.Fatal("the removed host's flag was cleared")
		}
		if info := d.Host(gone); info != (HostInfo{SuccessRate: -1, LocalOriginSuccessRate: -1}) {
			t.Fatalf("removed host info = %+v", info)
		}
		report(d, gone, 200, 1)
		sleep(time.Minute) // its ejection timer does not touch it either
		if !ejected(gone) {
			t.Fatal("the removed host was un-ejected by its timer")
		}
		if !ejected(keep) && !d.Host(keep).HalfOpen {
			t.Fatal("keep lost its ejection")
		}

		// Re-added, it is a new host to the detector: the stale flag goes.
		d.SetHosts(append(next, gone))
		if ejected(gone) || d.Host(gone).EjectionCount != 0 {
			t.Fatalf("re-added host: flags %v info %+v", gone.HealthString(), d.Host(gone))
		}
		report(d, added, 500, 5)
		wantEjected(t, d, added, true)
	})
}

// max_ejection_percent counts the hosts the detector owns now.
func TestSetHostsChangesEjectionRoom(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		report(d, hosts[0], 500, 5)
		wantEjected(t, d, hosts[0], true)
		report(d, hosts[1], 500, 5)
		wantEjected(t, d, hosts[1], false) // no room
		extra := testHosts(11)[10]
		d.SetHosts(append(hosts[1:], extra)) // the ejected host leaves: room for one again
		report(d, hosts[1], 500, 5)
		wantEjected(t, d, hosts[1], true)
		d.SetHosts(hosts[2:]) // 8 hosts (the ejected one gone): 1/8 > 10 %
		report(d, hosts[2], 500, 5)
		wantEjected(t, d, hosts[2], false)
		if s := d.Stats(); s.EjectionsOverflow != 2 || s.EjectionsActive != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestClose(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		report(d, hosts[0], 500, 5)
		report(d, hosts[1], 500, 5)
		sleep(30 * time.Second) // both half-open
		report(d, hosts[1], 500, 1)
		wantEjected(t, d, hosts[1], true)

		d.Close()
		d.Close()
		for _, h := range hosts {
			if !h.Available() {
				t.Fatalf("%s still out after Close: %s", h.Address, h.HealthString())
			}
		}
		if s := d.Stats(); s.EjectionsActive != 0 {
			t.Fatalf("stats = %+v", s)
		}
		report(d, hosts[2], 500, 10)
		d.SetHosts(hosts)
		d.HealthCheckPassed(hosts[2])
		if !hosts[2].Available() || d.Host(hosts[2]).EjectionCount != 0 {
			t.Fatal("a closed detector acted")
		}
		sleep(time.Hour)
	})
}

func TestNewSanitizes(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(2)
		d := New(Config{Consecutive5xx: 1, EnforcingConsecutive5xx: 500, MaxEjectionPercent: 500,
			BaseEjectionTime: 10 * time.Second, MaxEjectionTime: time.Second, MaxEjectionTimeJitter: -1}, nil)
		defer d.Close()
		d.SetHosts(hosts)
		report(d, hosts[0], 500, 1)
		report(d, hosts[1], 500, 1)
		wantEjected(t, d, hosts[0], true)
		wantEjected(t, d, hosts[1], true)
		if got := d.Host(hosts[0]).EjectedUntil.Sub(time.Now()); got != 10*time.Second {
			t.Fatalf("ejection lasts %v, want base (max raised to it)", got)
		}
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[0], false)
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"max unset with large base", func(c *Config) { c.BaseEjectionTime = time.Hour }, ""},
		{"max equals base", func(c *Config) { c.MaxEjectionTime = c.BaseEjectionTime }, ""},
		{"zero thresholds", func(c *Config) { c.Consecutive5xx, c.ConsecutiveGatewayFailure = 0, 0 }, ""},
		{"interval 0", func(c *Config) { c.Interval = 0 }, "outlier_detection.interval 0s: must be at least 1ms"},
		{"interval sub-ms", func(c *Config) { c.Interval = time.Microsecond }, "interval 1µs"},
		{"base 0", func(c *Config) { c.BaseEjectionTime = 0 }, "outlier_detection.base_ejection_time 0s"},
		{"max negative", func(c *Config) { c.MaxEjectionTime = -time.Second }, "max_ejection_time -1s: negative"},
		{"max below base", func(c *Config) { c.MaxEjectionTime = time.Second },
			"max_ejection_time 1s: cannot be smaller than base_ejection_time 30s"},
		{"jitter negative", func(c *Config) { c.MaxEjectionTimeJitter = -1 }, "max_ejection_time_jitter"},
		{"max percent", func(c *Config) { c.MaxEjectionPercent = 101 }, "outlier_detection.max_ejection_percent 101: must be at most 100"},
		{"enforcing 5xx", func(c *Config) { c.EnforcingConsecutive5xx = 200 }, "enforcing_consecutive_5xx 200"},
		{"enforcing gateway", func(c *Config) { c.EnforcingConsecutiveGatewayFailure = 101 }, "enforcing_consecutive_gateway_failure"},
		{"enforcing local", func(c *Config) { c.EnforcingConsecutiveLocalOriginFailure = 101 }, "enforcing_consecutive_local_origin_failure"},
		{"enforcing sr", func(c *Config) { c.EnforcingSuccessRate = 101 }, "enforcing_success_rate"},
		{"enforcing local sr", func(c *Config) { c.EnforcingLocalOriginSuccessRate = 101 }, "enforcing_local_origin_success_rate"},
		{"enforcing fp", func(c *Config) { c.EnforcingFailurePercentage = 101 }, "enforcing_failure_percentage 101"},
		{"enforcing local fp", func(c *Config) { c.EnforcingFailurePercentageLocalOrigin = 101 }, "enforcing_failure_percentage_local_origin"},
		{"fp threshold", func(c *Config) { c.FailurePercentageThreshold = 101 }, "failure_percentage_threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultConfigIsEnvoys(t *testing.T) {
	c := DefaultConfig()
	want := Config{
		Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
		EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocalOriginFailure: 100,
		EnforcingSuccessRate: 100, EnforcingLocalOriginSuccessRate: 100,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 10,
		SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1900,
		FailurePercentageThreshold: 85, FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 50,
		SuccessfulActiveHealthCheckUnejectHost: true,
	}
	if c != want {
		t.Fatalf("DefaultConfig() = %+v\nwant %+v", c, want)
	}
	if m := c.maxEjectionTime(); m != 300*time.Second {
		t.Fatalf("default max ejection time %v", m)
	}
}

func TestNames(t *testing.T) {
	m := Stats{EjectionsActive: 1, EjectionsEnforcedLocalOriginFailurePercentage: 7}.Map()
	if len(m) != 18 || m["ejections_active"] != 1 || m["ejections_enforced_local_origin_failure_percentage"] != 7 {
		t.Fatalf("Map() = %v", m)
	}
	for r := ReasonNone; r <= numReasons; r++ {
		if r.String() == "" {
			t.Fatalf("reason %d has no name", r)
		}
	}
	if numReasons.String() != "UNKNOWN" || LocalFailure(9).String() != "unknown" || LocalReset.String() != "reset" {
		t.Fatal("fallback names")
	}
	var s Stats
	if *s.detected(ReasonNone) != 0 || *s.enforced(numReasons) != 0 {
		t.Fatal("unknown reasons have counters")
	}
}

// Many goroutines report while hosts change, sweeps run on a real 1ms
// interval and the admin reads; -race checks the rest.
func TestConcurrentReport(t *testing.T) {
	hosts := testHosts(20)
	cfg := DefaultConfig()
	cfg.Interval = time.Millisecond
	cfg.MaxEjectionPercent = 50
	cfg.SuccessRateRequestVolume = 10
	cfg.SplitExternalLocalOriginErrors = true
	cfg.EnforcingFailurePercentage = 100
	d := New(cfg, nil)
	d.SetHosts(hosts)

	outcomes := []Outcome{{Status: 200}, {Status: 500}, {Status: 503}, {Status: 200},
		{Local: LocalTimeout}, {Status: 404}, {Local: LocalConnectFailure}, {Status: 502}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				h := hosts[(g*7+i)%len(hosts)]
				o := outcomes[(g+i)%len(outcomes)]
				if g%2 == 0 && i%10 != 0 {
					o = Outcome{Status: 500} // some hosts fail hard
				}
				d.Report(h, o)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if i%2 == 0 {
				d.SetHosts(hosts[:15])
			} else {
				d.SetHosts(hosts)
			}
			_ = d.Host(hosts[i%len(hosts)])
			_ = d.Stats()
			d.HealthCheckPassed(hosts[(i*3)%len(hosts)])
		}
	})
	wg.Wait()
	d.SetHosts(hosts)
	s := d.Stats()
	if s.EjectionsDetectedConsecutive5xx == 0 || s.EjectionsEnforcedTotal == 0 {
		t.Fatalf("nothing ejected: %+v", s)
	}
	active := 0
	for _, h := range hosts {
		if ejected(h) {
			active++
		}
	}
	if uint64(active) != s.EjectionsActive {
		t.Fatalf("%d hosts flagged, ejections_active %d", active, s.EjectionsActive)
	}
	d.Close()
	for _, h := range hosts {
		if ejected(h) {
			t.Fatalf("%s still ejected after Close", h.Address)
		}
	}
}

func TestReportAllocatesNothing(t *testing.T) {
	hosts := testHosts(10)
	cfg := DefaultConfig()
	cfg.Consecutive5xx = 1 << 30
	cfg.ConsecutiveGatewayFailure = 1 << 30
	cfg.ConsecutiveLocalOriginFailure = 1 << 30
	for _, split := range []bool{false, true} {
		cfg.SplitExternalLocalOriginErrors = split
		d := New(cfg, nil)
		d.SetHosts(hosts)
		stranger := testHosts(1)[0]
		for _, o := range []Outcome{{Status: 200}, {Status: 500}, {Status: 503}, {Local: LocalTimeout}, {}} {
			if n := testing.AllocsPerRun(1000, func() {
				d.Report(hosts[3], o)
				d.Report(stranger, o)
			}); n != 0 {
				t.Errorf("split=%v %+v: %v allocs per Report", split, o, n)
			}
		}
		d.Close()
	}
}

func benchDetector(b *testing.B) (*Detector, []*lb.Host) {
	hosts := testHosts(16)
	cfg := DefaultConfig()
	d := New(cfg, nil)
	d.SetHosts(hosts)
	b.Cleanup(d.Close)
	return d, hosts
}

func BenchmarkReport(b *testing.B) {
	d, hosts := benchDetector(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		status := 200
		if i%100 == 0 {
			status = 503 // 1 %: never five in a row
		}
		d.Report(hosts[i%len(hosts)], Outcome{Status: status})
		i++
	}
}

func BenchmarkReportParallel(b *testing.B) {
	d, hosts := benchDetector(b)
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7)) // goroutines walk the hosts out of step
		for pb.Next() {
			status := 200
			if i%100 == 0 {
				status = 503
			}
			d.Report(hosts[i%len(hosts)], Outcome{Status: status})
			i++
		}
	})
}

// One host shared by every goroutine: the worst case for its counters'
// cache line.
func BenchmarkReportParallelOneHost(b *testing.B) {
	d, hosts := benchDetector(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Report(hosts[0], Outcome{Status: 200})
		}
	})
}

// The slow paths re-check under the lock what Report saw without it; these
// races are rare in practice, so drive them directly.
func TestSlowPathRechecks(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		cfg := DefaultConfig()
		cfg.ConsecutiveGatewayFailure = 0
		cfg.MaxEjectionPercent = 100
		d := start(t, cfg, hosts)
		defer d.Close()
		state := func(h *lb.Host) *hostState { return d.table.Load().byHost[h] }

		// A disabled detector whose counter wrapped around to 0 == threshold.
		d.onConsecutive(state(hosts[0]), ReasonConsecutiveGatewayFailure)
		if s := d.Stats(); s.EjectionsDetectedConsecutiveGatewayFailure != 0 {
			t.Fatalf("disabled detector fired: %+v", s)
		}

		// A probe whose host another result already closed, or ejected, or
		// that was removed meanwhile.
		a := hosts[1]
		report(d, a, 500, 5)
		sleep(30 * time.Second)
		hs := state(a)
		if !d.Host(a).HalfOpen {
			t.Fatal("not half-open")
		}
		d.Report(a, Outcome{Status: 200})
		if d.probe(hs, Outcome{Status: 500}) {
			t.Fatal("a probe of a closed host was used up")
		}
		report(d, a, 500, 5)
		if !d.probe(hs, Outcome{Status: 200}) {
			t.Fatal("a probe of an ejected host was counted")
		}
		d.SetHosts(hosts[2:])
		if !d.probe(hs, Outcome{Status: 200}) {
			t.Fatal("a probe of a removed host was counted")
		}
		d.onConsecutive(hs, ReasonConsecutive5xx)
		if s := d.Stats(); s.EjectionsDetectedConsecutive5xx != 2 {
			t.Fatalf("a removed host was detected: %+v", s)
		}
	})
}

func TestUnknownLocalFailureCountsAsFailure(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(10)
		d := start(t, DefaultConfig(), hosts)
		defer d.Close()
		reportLocal(d, hosts[0], LocalFailure(9), 5)
		wantEjected(t, d, hosts[0], true)
	})
}

// Below both minimum host counts the sweep computes nothing, as in Envoy.
func TestSweepTooFewHosts(t *testing.T) {
	bubble(t, func(t *testing.T) {
		hosts := testHosts(4)
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent = 100
		cfg.Consecutive5xx = 0
		d := start(t, cfg, hosts)
		defer d.Close()
		for _, h := range hosts[:3] {
			report(d, h, 200, 100)
		}
		mixed(d, hosts[3], 100, 10, Outcome{Status: 500})
		sleep(10 * time.Second)
		wantEjected(t, d, hosts[3], false)
		if r := d.Host(hosts[0]).SuccessRate; r != -1 {
			t.Fatalf("success rate = %v, want -1", r)
		}
	})
}
