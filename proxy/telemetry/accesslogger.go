package telemetry

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// accessLogBufferSize bounds how much log a crash can lose and how big
	// one write(2) gets; 64 KiB is a few hundred lines.
	accessLogBufferSize = 64 << 10
	// accessLogFlushInterval is the longest a line waits in memory.
	accessLogFlushInterval = time.Second
	// maxPooledLine keeps one huge line (a giant path) from pinning memory in the pool.
	maxPooledLine = 16 << 10
)

// ErrAccessLogClosed is returned by Reopen after Close.
var ErrAccessLogClosed = errors.New("access log is closed")

// AccessLogger writes one line per request to stdout, stderr or a file:
// our fixed JSON line, or an Envoy format (WithFormat).
//
// Lines are encoded outside any lock into pooled buffers, appended to a
// shared in-memory buffer, and written by whichever caller fills the buffer,
// by a flusher goroutine at least once a second, and by Close. Two buffers
// are swapped so that callers keep appending while a write is in progress.
type AccessLogger struct {
	path    string
	ownFile bool // false for stdout/stderr, which we must not close

	mu      sync.Mutex // guards cur and shut
	cur     []byte
	shut    bool       // set by Close under mu: no more appends
	writeMu sync.Mutex // serialises writes; guards out, outShut and spare
	out     *os.File
	outShut bool
	spare   []byte

	closed  atomic.Bool
	dropped atomic.Uint64 // lines lost to write errors or logged after Close
	lastErr atomic.Pointer[error]

	stop chan struct{}
	done chan struct{}

	// format and shared are set on a view made by WithFormat: it encodes
	// with format and writes through shared, which owns everything above.
	format *Format
	shared *AccessLogger
}

// WithFormat returns a logger that writes to the same output as l (one
// buffer, one file) with format f; nil f is the fixed JSON line. Every
// other method of the view acts on l.
func (l *AccessLogger) WithFormat(f *Format) *AccessLogger {
	r := l.root()
	if f == nil {
		return r
	}
	return &AccessLogger{format: f, shared: r}
}

func (l *AccessLogger) root() *AccessLogger {
	if l.shared != nil {
		return l.shared
	}
	return l
}

type lineBuf struct{ b []byte }

var linePool = sync.Pool{New: func() any { return &lineBuf{b: make([]byte, 0, 1024)} }}

// NewAccessLogger opens path for access logging: "/dev/stdout" and
// "/dev/stderr" use the process's streams, anything else is a file opened
// for append (created with mode 0644 if missing). Close must be called to
// stop the flusher and write what is buffered.
func NewAccessLogger(path string) (*AccessLogger, error) {
	if path == "" {
		return nil, errors.New("access log: empty path")
	}
	out, own, err := openAccessLog(path)
	if err != nil {
		return nil, err
	}
	l := &AccessLogger{
		path:    path,
		ownFile: own,
		out:     out,
		cur:     make([]byte, 0, accessLogBufferSize),
		spare:   make([]byte, 0, accessLogBufferSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go l.flushLoop()
	return l, nil
}

func openAccessLog(path string) (f *os.File, own bool, err error) {
	switch path {
	case "/dev/stdout":
		return os.Stdout, false, nil
	case "/dev/stderr":
		return os.Stderr, false, nil
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("access log: %w", err)
	}
	return f, true, nil
}

// Path is the path the logger was opened with.
func (l *AccessLogger) Path() string { return l.root().path }

// Log appends e as one line. It is safe for concurrent use and does not
// allocate. After Close the line is dropped and counted.
func (l *AccessLogger) Log(e *Entry) {
	f := l.format
	l = l.root()
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	lb := linePool.Get().(*lineBuf)
	if f != nil {
		lb.b = f.Append(lb.b[:0], e)
	} else {
		lb.b = e.AppendJSON(lb.b[:0])
	}
	if len(lb.b) > 0 {
		l.write(lb.b)
	}
	if cap(lb.b) <= maxPooledLine {
		linePool.Put(lb)
	}
}

func (l *AccessLogger) write(line []byte) {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	if len(l.cur)+len(line) <= cap(l.cur) {
		l.cur = append(l.cur, line...)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()

	// The buffer is full: this caller pays for the write, then retries.
	// A line larger than a whole buffer goes out on its own.
	l.flush()
	if len(line) > accessLogBufferSize {
		l.writeMu.Lock()
		l.writeOut(line, 1)
		l.writeMu.Unlock()
		return
	}
	l.mu.Lock()
	if !l.shut && len(l.cur)+len(line) <= cap(l.cur) {
		l.cur = append(l.cur, line...)
		l.mu.Unlock()
		return
	}
	shut := l.shut
	l.mu.Unlock()
	if shut {
		l.dropped.Add(1)
		return
	}
	// Other callers refilled the buffer while we flushed; flushing
	// again under contention could starve us, so write the line directly.
	l.writeMu.Lock()
	l.writeOut(line, 1)
	l.writeMu.Unlock()
}

// flush writes whatever is buffered.
func (l *AccessLogger) flush() {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	if len(l.cur) == 0 {
		l.mu.Unlock()
		return
	}
	l.cur, l.spare = l.spare[:0], l.cur
	l.mu.Unlock()
	l.writeOut(l.spare, countLines(l.spare))
	l.spare = l.spare[:0]
}

// writeOut writes b to the output; callers hold writeMu. On error the
// lines are dropped rather than retried: a full disk must not grow memory
// without bound or block requests.
func (l *AccessLogger) writeOut(b []byte, lines int) {
	if l.outShut {
		l.dropped.Add(uint64(lines))
		return
	}
	if _, err := l.out.Write(b); err != nil {
		l.dropped.Add(uint64(lines))
		err = fmt.Errorf("access log %s: %w", l.path, err)
		l.lastErr.Store(&err)
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func (l *AccessLogger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(accessLogFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.flush()
		}
	}
}

// Flush writes buffered lines now.
func (l *AccessLogger) Flush() { l.root().flush() }

// Reopen closes and reopens a file output, so that log rotation by rename
// (logrotate without copytruncate) takes effect; the binary calls it on
// SIGUSR1. It is a no-op for stdout and stderr.
func (l *AccessLogger) Reopen() error {
	l = l.root()
	if !l.ownFile {
		return nil
	}
	l.flush()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.outShut || l.closed.Load() {
		return ErrAccessLogClosed
	}
	f, _, err := openAccessLog(l.path)
	if err != nil {
		return err
	}
	old := l.out
	l.out = f
	if err := old.Close(); err != nil {
		return fmt.Errorf("access log %s: closing old file: %w", l.path, err)
	}
	return nil
}

// Dropped reports how many lines were lost to write errors or arrived after Close.
func (l *AccessLogger) Dropped() uint64 { return l.root().dropped.Load() }

// Err returns the most recent write error, or nil.
func (l *AccessLogger) Err() error {
	l = l.root()
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops the flusher, writes what is buffered and closes a file
// output. It returns the last write error seen, if any. Calling it again
// is a no-op.
func (l *AccessLogger) Close() error {
	l = l.root()
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	<-l.done
	// From here no line can enter the buffer, so this flush is the last.
	l.mu.Lock()
	l.shut = true
	l.mu.Unlock()
	l.flush()
	var errs []error
	if err := l.Err(); err != nil {
		errs = append(errs, err)
	}
	l.writeMu.Lock()
	l.outShut = true
	if l.ownFile {
		if err := l.out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("access log %s: %w", l.path, err))
		}
	}
	l.writeMu.Unlock()
	return errors.Join(errs...)
}
