package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Upstream is the backend every target forwards to.
type Upstream struct {
	HTTP string // HTTP/1.1 + h2c host:port
	GRPC string // gRPC host:port
	// H3 is the backend's own HTTP/3 address (UDP), the floor for the h3
	// scenario; empty when the backend does not serve it.
	H3 string
	// TCP is the backend's bulk source (raw TCP); empty when not served.
	TCP string
	// CertFile and KeyFile are the bench's self-signed certificate, served
	// by every target's HTTP/3 listener; empty means no HTTP/3 listeners.
	CertFile, KeyFile string
}

// Endpoints are where a target accepts each protocol.
type Endpoints struct {
	HTTP1 string
	H2C   string
	GRPC  string
	// H3 (UDP) and TCP (a raw byte stream from the backend's bulk source)
	// are empty when the target does not serve them.
	H3  string
	TCP string
	// GRPCMTLS is, for the A/B target only, the entry of the path through
	// the same processes whose sidecar-to-sidecar hop is mutual TLS (GRPC
	// is the plaintext one).
	GRPCMTLS string
}

// Target is a running target.
type Target struct {
	Name      string
	Endpoints Endpoints
	// Procs are the proxy processes whose CPU and memory the bench reports;
	// empty for direct.
	Procs []*Process
	// Admin are the outrigger processes' admin addresses, front first (the
	// last is the proxy nearest the backend); empty for the peers.
	Admin []string
	// Config summarises the settings that matter for a fair comparison.
	Config string
	// Version is the peer's own version string, when it tells.
	Version string
}

// PIDs are the process ids to measure.
func (t *Target) PIDs() []int {
	var out []int
	for _, p := range t.Procs {
		out = append(out, p.PID())
	}
	return out
}

// Alive reports an error if any process has exited.
func (t *Target) Alive() error {
	for _, p := range t.Procs {
		select {
		case <-p.Done():
			return fmt.Errorf("%w: %s (%s)\n%s", ErrExited, t.Name, p.Name, p.LogTail())
		default:
		}
	}
	return nil
}

// Close stops every process, the front one first.
func (t *Target) Close() error {
	var errs []error
	for i := len(t.Procs) - 1; i >= 0; i-- {
		errs = append(errs, t.Procs[i].Stop(5*time.Second))
	}
	return errors.Join(errs...)
}

// Direct is the backend itself: the baseline every proxy is compared with.
func Direct(up Upstream) *Target {
	return &Target{
		Name:      "direct",
		Endpoints: Endpoints{HTTP1: up.HTTP, H2C: up.HTTP, GRPC: up.GRPC, H3: up.H3, TCP: up.TCP},
		Config:    "no proxy: the load generator talks to the backend",
	}
}

// startReady starts a process and waits until addrs accept connections.
func startReady(ctx context.Context, name string, argv, env []string, dir string, addrs []string) (*Process, error) {
	p, err := StartProcess(name, argv, env, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	if err := WaitReady(ctx, p, addrs, 20*time.Second); err != nil {
		_ = p.Stop(2 * time.Second)
		return nil, err
	}
	return p, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("targets: write %s: %w", path, err)
	}
	return nil
}

// mkdir makes a per-target directory readable by a peer's unprivileged
// workers (nginx drops to nobody when started as root).
func mkdir(parent, name string) (string, error) {
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("targets: %w", err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		return "", fmt.Errorf("targets: %w", err)
	}
	return d, nil
}
