package telemetry

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newTestLogger(t *testing.T, path string) *AccessLogger {
	t.Helper()
	l, err := NewAccessLogger(path)
	if err != nil {
		t.Fatalf("NewAccessLogger(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// readLines returns the file's lines, failing the test on any line that is
// not a JSON object with every access-log key.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %q: %v", len(out)+1, sc.Text(), err)
		}
		if len(m) != len(allKeys) {
			t.Fatalf("line %d has %d keys, want %d", len(out)+1, len(m), len(allKeys))
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNewAccessLogger(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{name: "stdout", path: "/dev/stdout"},
		{name: "stderr", path: "/dev/stderr"},
		{name: "new file", path: filepath.Join(dir, "access.log")},
		{name: "empty path", path: "", wantErr: true},
		{name: "missing directory", path: filepath.Join(dir, "nope", "access.log"), wantErr: true},
		{name: "directory", path: dir, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewAccessLogger(tt.path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewAccessLogger(%q) error = %v, wantErr %v", tt.path, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if err := l.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestAccessLoggerFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte(`{"existing":"line"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newTestLogger(t, path)
	e := sampleEntry()
	for i := 0; i < 3; i++ {
		e.Status = 200 + i
		l.Log(e)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 || lines[0] != `{"existing":"line"}` {
		t.Fatalf("want the existing line then 3 new ones, got %q", data)
	}
	for i, ln := range lines[1:] {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("line %q: %v", ln, err)
		}
		if m["response_code"] != float64(200+i) {
			t.Errorf("line %d response_code = %v", i, m["response_code"])
		}
	}
}

func TestAccessLoggerConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newTestLogger(t, path)
	const writers, perWriter = 8, 2000 // far more than one buffer, so full-buffer flushes happen
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := sampleEntry()
			e.Path = strings.Repeat("p", w*10) + "\"\n\xff"
			for i := 0; i < perWriter; i++ {
				e.BytesSent = int64(i)
				l.Log(e)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(readLines(t, path)); got != writers*perWriter {
		t.Errorf("got %d lines, want %d", got, writers*perWriter)
	}
	if d := l.Dropped(); d != 0 {
		t.Errorf("Dropped() = %d, want 0", d)
	}
}

func TestAccessLoggerHugeLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newTestLogger(t, path)
	e := sampleEntry()
	l.Log(e)
	e.Path = "/" + strings.Repeat("x", 2*accessLogBufferSize)
	l.Log(e)
	e.Path = "/after"
	l.Log(e)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	if p := lines[1]["path"].(string); len(p) != 2*accessLogBufferSize+1 {
		t.Errorf("huge path has length %d", len(p))
	}
	if lines[2]["path"] != "/after" {
		t.Errorf("order not kept: last path %v", lines[2]["path"])
	}
}

func TestAccessLoggerFlushesWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newTestLogger(t, path)
	l.Log(sampleEntry())
	deadline := time.Now().Add(5 * accessLogFlushInterval)
	for {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("line not flushed by the periodic flusher")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Errorf("got %d lines, want 1", n)
	}
}

func TestAccessLoggerAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newTestLogger(t, path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l.Log(sampleEntry())
	if l.Dropped() != 1 {
		t.Errorf("Dropped() = %d, want 1", l.Dropped())
	}
	if err := l.Reopen(); !errors.Is(err, ErrAccessLogClosed) {
		t.Errorf("Reopen after Close = %v, want ErrAccessLogClosed", err)
	}
}

func TestAccessLoggerReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	rotated := filepath.Join(dir, "access.log.1")
	l := newTestLogger(t, path)
	l.Log(sampleEntry())
	l.Flush()
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	l.Log(sampleEntry())
	l.Log(sampleEntry())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, rotated)); n != 1 {
		t.Errorf("rotated file has %d lines, want 1", n)
	}
	if n := len(readLines(t, path)); n != 2 {
		t.Errorf("new file has %d lines, want 2", n)
	}
}

func TestAccessLoggerLogDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	l := newTestLogger(t, filepath.Join(t.TempDir(), "access.log"))
	e := sampleEntry()
	if n := testing.AllocsPerRun(1000, func() { l.Log(e) }); n != 0 {
		t.Errorf("Log allocates %v times per call, want 0", n)
	}
}

func BenchmarkAccessLoggerLog(b *testing.B) {
	l, err := NewAccessLogger(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := sampleEntry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Log(e)
		}
	})
}

func TestAccessLoggerWriteErrorDropsLines(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full to make writes fail")
	}
	l, err := NewAccessLogger("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		l.Log(sampleEntry())
	}
	l.Flush()
	if got := l.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d, want 3", got)
	}
	if !errors.Is(l.Err(), syscall.ENOSPC) {
		t.Errorf("Err() = %v, want ENOSPC", l.Err())
	}
	// The logger keeps going after an error: later lines are tried again.
	l.Log(sampleEntry())
	if err := l.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close() = %v, want the write error", err)
	}
	if got := l.Dropped(); got != 4 {
		t.Errorf("Dropped() after Close = %d, want 4", got)
	}
}
