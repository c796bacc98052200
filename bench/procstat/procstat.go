// Package procstat reads a process tree's CPU time and peak memory from
// Linux's /proc: utime+stime from /proc/PID/stat, VmHWM from
// /proc/PID/status, and resets the peak through /proc/PID/clear_refs.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime. The kernel fixes it at
// 100 on every architecture Linux exports to user space, whatever CONFIG_HZ is.
const ClockTicks = 100

// ErrMalformed marks a /proc file this package could not parse.
var ErrMalformed = errors.New("procstat: malformed /proc file")

// FS reads one /proc tree; Root is "/proc" outside tests.
type FS struct{ Root string }

// Default is the real /proc.
var Default = FS{Root: "/proc"}

// Stat is the part of /proc/PID/stat the bench uses.
type Stat struct {
	PID  int
	Comm string
	PPID int
	// CPU is utime+stime: time the process spent on a CPU, user and kernel.
	CPU time.Duration
}

// ReadStat parses /proc/PID/stat.
func (fs FS) ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: %w", err)
	}
	return parseStat(b)
}

// parseStat reads "pid (comm) state ppid ... utime stime ...". comm may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return Stat{}, fmt.Errorf("%w: stat %q", ErrMalformed, truncate(b))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("%w: stat pid: %w", ErrMalformed, err)
	}
	fields := bytes.Fields(b[closing+1:])
	// fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
	if len(fields) < 13 {
		return Stat{}, fmt.Errorf("%w: stat has %d fields after comm", ErrMalformed, len(fields))
	}
	ppid, err1 := strconv.Atoi(string(fields[1]))
	utime, err2 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err3 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Stat{}, fmt.Errorf("%w: stat: %w", ErrMalformed, err)
	}
	return Stat{
		PID:  pid,
		Comm: string(b[open+1 : closing]),
		PPID: ppid,
		CPU:  time.Duration(utime+stime) * (time.Second / ClockTicks),
	}, nil
}

// Memory is the part of /proc/PID/status the bench uses, in bytes.
type Memory struct {
	RSS  int64 // VmRSS now
	Peak int64 // VmHWM: the RSS high-water mark since start or the last ResetPeak
}

// ReadMemory parses VmRSS and VmHWM from /proc/PID/status.
func (fs FS) ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, strconv.Itoa(pid), "status"))
	if err != nil {
		return Memory{}, fmt.Errorf("procstat: %w", err)
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	var haveRSS, havePeak bool
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst, haveRSS = &m.RSS, true
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst, havePeak = &m.Peak, true
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[2]) != "kB" {
			return Memory{}, fmt.Errorf("%w: status line %q", ErrMalformed, line)
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("%w: status line %q: %w", ErrMalformed, line, err)
		}
		*dst = kb << 10
	}
	if !haveRSS || !havePeak {
		// Kernel threads and zombies have no Vm lines.
		return Memory{}, fmt.Errorf("%w: status has no VmRSS/VmHWM", ErrMalformed)
	}
	return m, nil
}

// ResetPeak sets VmHWM back to the current RSS (writing 5 to clear_refs,
// Linux 4.0+), so the next reading is the peak of what happened since.
func (fs FS) ResetPeak(pid int) error {
	p := filepath.Join(fs.Root, strconv.Itoa(pid), "clear_refs")
	if err := os.WriteFile(p, []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: reset peak RSS of %d: %w", pid, err)
	}
	return nil
}

// Tree returns pid and all its descendants (nginx's workers, for one).
func (fs FS) Tree(pid int) ([]int, error) {
	entries, err := os.ReadDir(fs.Root)
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := fs.ReadStat(p)
		if err != nil {
			continue // the process exited while we looked
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// Usage is what a set of processes consumed.
type Usage struct {
	CPU  time.Duration
	Peak int64 // sum of the processes' VmHWM
	RSS  int64 // sum of VmRSS
	// SyscR and SyscW are the read and write system calls made (the
	// syscr and syscw of /proc/PID/io), summed; IOKnown is false when a
	// process's io file could not be read (it is readable by the owner
	// only).
	SyscR, SyscW int64
	IOKnown      bool
}

// Sub is u minus an earlier reading's CPU and system calls; memory stays
// u's.
func (u Usage) Sub(before Usage) Usage {
	u.CPU -= before.CPU
	u.SyscR -= before.SyscR
	u.SyscW -= before.SyscW
	u.IOKnown = u.IOKnown && before.IOKnown
	return u
}

// IO is the part of /proc/PID/io the bench uses.
type IO struct {
	SyscR, SyscW int64
}

// ReadIO parses /proc/PID/io.
func (fs FS) ReadIO(pid int) (IO, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, strconv.Itoa(pid), "io"))
	if err != nil {
		return IO{}, fmt.Errorf("procstat: %w", err)
	}
	return parseIO(b)
}

func parseIO(b []byte) (IO, error) {
	var io IO
	var seen int
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch strings.TrimSpace(k) {
		case "syscr":
			dst = &io.SyscR
		case "syscw":
			dst = &io.SyscW
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("%w: io %q", ErrMalformed, line)
		}
		*dst = n
		seen++
	}
	if seen != 2 {
		return IO{}, fmt.Errorf("%w: io without syscr and syscw: %q", ErrMalformed, truncate(b))
	}
	return io, nil
}

// Measure sums the usage of every process in the trees rooted at pids.
func (fs FS) Measure(pids []int) (Usage, error) {
	u := Usage{IOKnown: true}
	for _, root := range pids {
		tree, err := fs.Tree(root)
		if err != nil {
			return Usage{}, err
		}
		for _, p := range tree {
			st, err := fs.ReadStat(p)
			if err != nil {
				return Usage{}, err
			}
			m, err := fs.ReadMemory(p)
			if err != nil {
				return Usage{}, err
			}
			u.CPU += st.CPU
			u.Peak += m.Peak
			u.RSS += m.RSS
			if io, err := fs.ReadIO(p); err == nil {
				u.SyscR += io.SyscR
				u.SyscW += io.SyscW
			} else {
				u.IOKnown = false
			}
		}
	}
	return u, nil
}

// ResetPeaks resets VmHWM for every process in the trees rooted at pids.
func (fs FS) ResetPeaks(pids []int) error {
	var errs []error
	for _, root := range pids {
		tree, err := fs.Tree(root)
		if err != nil {
			return err
		}
		for _, p := range tree {
			errs = append(errs, fs.ResetPeak(p))
		}
	}
	return errors.Join(errs...)
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
