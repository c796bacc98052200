package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Spread
	}{
		{name: "empty", in: nil, want: Spread{}},
		{name: "one", in: []float64{5}, want: Spread{Median: 5, Min: 5, Max: 5, N: 1}},
		{name: "odd", in: []float64{9, 1, 5}, want: Spread{Median: 5, Min: 1, Max: 9, N: 3}},
		{name: "even", in: []float64{4, 1, 3, 2}, want: Spread{Median: 2.5, Min: 1, Max: 4, N: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SpreadOf(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// sampleRun is two targets, two repetitions, two open-loop rates.
func sampleRun() *Run {
	r := &Run{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 95 * time.Second,
		Command: "outrigger-bench --reps 2",
		Machine: Machine{CPUModel: "Test CPU", NProc: 2, Kernel: "Linux 6.1", GoVer: "go1.26"},
		Targets: []TargetInfo{
			{Name: "direct", Config: "no proxy"},
			{Name: "haproxy", Version: "HAProxy 2.6", Config: "`nbthread 1` | pipes", IdleRSS: 15 << 20},
		},
		Scenarios: []ScenarioInfo{{Name: "small-h1", Description: "small GETs", Protocol: "http1", Workers: 50, RefRate: 1000}},
		CrossChecks: []CrossCheck{
			{Scenario: "small-h1", Target: "direct", Tool: "wrk", Command: "wrk -t1 -c50 -d3s http://TARGET/", RPS: 100000},
			{Scenario: "small-h1", Target: "haproxy", Tool: "wrk", Command: "wrk -t1 -c50 -d3s http://TARGET/", RPS: 50000},
		},
		Profile: &Profile{Err: "outrigger does not serve pprof"},
		Notes:   []string{"target caddy skipped: not installed"},
	}
	for rep := 1; rep <= 2; rep++ {
		f := float64(rep)
		for _, rate := range []float64{1000, 8000} {
			r.Measurements = append(r.Measurements,
				Measurement{Scenario: "small-h1", Target: "direct", Rep: rep, Mode: "open", Rate: rate, Throughput: rate, OK: 2000,
					P50: 50 * time.Microsecond, P90: 70 * time.Microsecond, P99: time.Duration(100*rate/1000) * time.Microsecond, P999: 300 * time.Microsecond},
				Measurement{Scenario: "small-h1", Target: "haproxy", Rep: rep, Mode: "open", Rate: rate, Throughput: rate, OK: 2000, Failed: int64(rep - 1),
					Errors: "1× http1: status 503", P50: 80 * time.Microsecond, P90: 100 * time.Microsecond,
					P99: time.Duration(150*rate/1000) * time.Microsecond, P999: 400 * time.Microsecond,
					CPU: 200 * time.Millisecond, PeakRSS: 16 << 20},
			)
		}
		r.Measurements = append(r.Measurements,
			Measurement{Scenario: "small-h1", Target: "direct", Rep: rep, Mode: "closed", Throughput: 100000 * f, OK: 300000,
				P50: 400 * time.Microsecond, P99: 2 * time.Millisecond},
			Measurement{Scenario: "small-h1", Target: "haproxy", Rep: rep, Mode: "closed", Throughput: 40000 * f, OK: 120000,
				P50: time.Millisecond, P99: 3 * time.Millisecond, CPU: 3 * time.Second, PeakRSS: 20 << 20},
		)
	}
	return r
}

func TestSummarise(t *testing.T) {
	sums := Summarise(sampleRun().Measurements)
	if len(sums) != 6 {
		t.Fatalf("%d summaries, want 6 (2 targets × (2 rates + closed))", len(sums))
	}
	s, ok := Find(sums, Key{"small-h1", "haproxy", "closed", 0})
	if !ok {
		t.Fatal("haproxy closed loop missing")
	}
	if s.Throughput != (Spread{Median: 60000, Min: 40000, Max: 80000, N: 2}) {
		t.Errorf("throughput %+v", s.Throughput)
	}
	// 3 s of CPU over 120,000 requests = 0.25 s per 10k.
	if s.CPUPer10k.Median != 0.25 {
		t.Errorf("CPU per 10k = %v, want 0.25", s.CPUPer10k.Median)
	}
	o, _ := Find(sums, Key{"small-h1", "haproxy", "open", 1000})
	if o.Failed != 1 || o.Requests != 4001 || len(o.Errors) != 1 {
		t.Errorf("open summary failed %d requests %d errors %v", o.Failed, o.Requests, o.Errors)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	plots := PlotFiles{Latency: map[string]string{"small-h1": "latency-small-h1.png"}, Throughput: map[string]string{"small-h1": "throughput-small-h1.png"}}
	if err := WriteMarkdown(&b, sampleRun(), plots); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"outrigger-bench --reps 2",
		"Test CPU, `nproc` = 2",
		"| haproxy | HAProxy 2.6 | `nbthread 1` \\| pipes | 15.0 MiB |",
		// closed loop: medians with ranges, ratios, CPU per 10k
		"| haproxy | 60.0k (40.0k–80.0k) | 0.40× | 1.00× | 1.00 ms | 3.00 ms | 0.250 | 20.0 MiB | 0 |",
		"| direct | 150.0k (100.0k–200.0k) | 1.00× | 2.50× |",
		// open loop at the reference rate: added latency over direct
		"| haproxy | 80 µs | 100 µs | 150 µs | 400 µs | +30 µs | +50 µs |",
		"1 of 4001: 1× http1: status 503",
		// the sweep table and plots
		"| target | 1.00k/s | 8.00k/s |",
		"| haproxy | 150 µs (1 err) | 1.20 ms (1 err) |",
		"![latency against offered load, small-h1](latency-small-h1.png)",
		"![closed-loop throughput, small-h1](throughput-small-h1.png)",
		// cross-check
		"`wrk -t1 -c50 -d3s http://TARGET/`",
		"| haproxy | 50.0k | 0.50× | 0 |",
		"Not taken: outrigger does not serve pprof",
		"- target caddy skipped: not installed",
		"## Method",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	files, err := WritePlots(dir, "test", sampleRun())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{files.Latency["small-h1"], files.Throughput["small-h1"]} {
		if !strings.HasPrefix(name, "test-") {
			t.Fatalf("plot missing: %+v", files)
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
			t.Errorf("%s is %v", name, b)
		}
	}
}

func TestCPUModel(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "x86", in: "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n", want: "AMD EPYC 7B13 (2 logical CPUs in /proc/cpuinfo)"},
		{name: "arm", in: "processor\t: 0\nBogoMIPS\t: 50\n\nModel\t: Raspberry Pi 4\n", want: "Raspberry Pi 4 (1 logical CPUs in /proc/cpuinfo)"},
		{name: "unknown", in: "processor\t: 0\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CPUModel([]byte(tt.in)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
