package procstat

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantComm string
		wantPPID int
		wantCPU  time.Duration
		wantErr  bool
	}{
		{
			name:     "plain",
			in:       "1234 (nginx) S 1 1234 1234 0 -1 4194624 100 0 0 0 150 50 0 0 20 0 1 0 100 1000 200 18446744073709551615\n",
			wantComm: "nginx", wantPPID: 1, wantCPU: 2 * time.Second,
		},
		{
			name:     "comm with spaces and parens",
			in:       "77 (a) b (c)) R 5 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			wantComm: "a) b (c)", wantPPID: 5, wantCPU: 100 * time.Millisecond,
		},
		{name: "truncated", in: "1 (x) S 1 2 3", wantErr: true},
		{name: "no comm", in: "1 x S 1 2 3 4 5 6 7 8 9 10 11 12 13", wantErr: true},
		{name: "bad number", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 zz 3 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if st.Comm != tt.wantComm || st.PPID != tt.wantPPID || st.CPU != tt.wantCPU {
				t.Errorf("got %+v, want comm %q ppid %d cpu %v", st, tt.wantComm, tt.wantPPID, tt.wantCPU)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Memory
		wantErr bool
	}{
		{name: "ok", in: "Name:\tx\nVmPeak:\t 9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n", want: Memory{RSS: 1 << 20, Peak: 2 << 20}},
		{name: "kernel thread", in: "Name:\tkthreadd\nThreads:\t1\n", wantErr: true},
		{name: "bad unit", in: "VmHWM:\t2048 MB\nVmRSS:\t1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if m != tt.want {
				t.Errorf("got %+v, want %+v", m, tt.want)
			}
		})
	}
}

// fakeProc writes a /proc tree: pid -> (ppid, cpu ticks, hwm kB).
func fakeProc(t *testing.T, procs map[int][3]int) FS {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (p) S " + strconv.Itoa(p[0]) + " 0 0 0 -1 0 0 0 0 0 " + strconv.Itoa(p[1]) + " 0 0 0 20 0 1 0"
		status := "VmHWM:\t" + strconv.Itoa(p[2]) + " kB\nVmRSS:\t1 kB\n"
		for name, body := range map[string]string{"stat": stat, "status": status} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not a process directory: skipped.
	if err := os.MkdirAll(filepath.Join(root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	return FS{Root: root}
}

func TestTreeAndMeasure(t *testing.T) {
	fs := fakeProc(t, map[int][3]int{
		1:  {0, 0, 1},
		10: {1, 100, 1000},  // nginx master
		11: {10, 250, 3000}, // worker
		12: {11, 50, 10},    // worker's child
		20: {1, 999, 999},   // unrelated
	})
	tree, err := fs.Tree(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != 3 || tree[0] != 10 {
		t.Fatalf("tree = %v, want 10 and its two descendants", tree)
	}
	u, err := fs.Measure([]int{10})
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU != 4*time.Second || u.Peak != 4010<<10 || u.RSS != 3<<10 {
		t.Errorf("usage = %+v, want 4s CPU, 4010 kB peak, 3 kB RSS", u)
	}
	before := Usage{CPU: time.Second}
	if d := u.Sub(before); d.CPU != 3*time.Second || d.Peak != u.Peak {
		t.Errorf("Sub = %+v", d)
	}
	if _, err := fs.Measure([]int{99}); err == nil {
		t.Error("measuring a missing process succeeded")
	}
	// The fake has no io files: system calls are unknown, not an error.
	if u.IOKnown {
		t.Error("system calls known without /proc/PID/io")
	}
	io := "rchar: 10\nwchar: 20\nsyscr: 7\nsyscw: 9\nread_bytes: 0\n"
	for _, pid := range []int{10, 11, 12} {
		if err := os.WriteFile(filepath.Join(fs.Root, strconv.Itoa(pid), "io"), []byte(io), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u, err = fs.Measure([]int{10})
	if err != nil || !u.IOKnown || u.SyscR != 21 || u.SyscW != 27 {
		t.Errorf("usage with io = %+v, %v", u, err)
	}
	if d := u.Sub(Usage{SyscR: 1, SyscW: 2, IOKnown: true}); d.SyscR != 20 || d.SyscW != 25 || !d.IOKnown {
		t.Errorf("Sub = %+v", d)
	}
	if d := u.Sub(Usage{}); d.IOKnown {
		t.Error("Sub of an unknown reading is known")
	}
}

func TestParseIO(t *testing.T) {
	if io, err := parseIO([]byte("syscr: 3\nsyscw: 4\n")); err != nil || io != (IO{SyscR: 3, SyscW: 4}) {
		t.Errorf("got %+v, %v", io, err)
	}
	for _, bad := range []string{"", "syscr: 3\n", "syscr: x\nsyscw: 1\n"} {
		if _, err := parseIO([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := (FS{Root: t.TempDir()}).ReadIO(1); err == nil {
		t.Error("reading a missing io file succeeded")
	}
}

// TestSelf reads this very process through the real /proc.
func TestSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	pid := os.Getpid()
	st, err := Default.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != pid || st.PPID == 0 {
		t.Errorf("stat = %+v", st)
	}
	m, err := Default.ReadMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("memory = %+v, want 0 < RSS <= peak", m)
	}
	// clear_refs is writable by the process's owner on Linux 4.0+.
	if err := Default.ResetPeak(pid); err != nil {
		t.Logf("reset peak: %v (tolerated: some sandboxes forbid it)", err)
	}
	// CPU time is counted in clock ticks (10 ms): a process that just
	// started may show none yet, so spin (bounded) until some is counted.
	var u Usage
	sink := 0
	for deadline := time.Now().Add(5 * time.Second); ; {
		u, err = Default.Measure([]int{pid})
		if err != nil {
			t.Fatal(err)
		}
		if u.CPU > 0 || time.Now().After(deadline) {
			break
		}
		for i := 0; i < 1_000_000; i++ {
			sink += i
		}
	}
	_ = sink
	if u.CPU <= 0 {
		t.Errorf("CPU = %v after spinning, want > 0", u.CPU)
	}
}
