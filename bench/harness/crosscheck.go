package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// crossCheck runs the scenario's external tool once against each target, so
// a reader can see our generator agrees with a well-known one.
func crossCheck(ctx context.Context, cfg *Config, sc Scenario, running []*targets.Target, out *report.Run) []report.CrossCheck {
	bin, err := targets.LookBinary(sc.CrossCheck)
	if err != nil {
		out.Notes = append(out.Notes, fmt.Sprintf("%s cross-check skipped: %s not installed", sc.Name, sc.CrossCheck))
		return nil
	}
	var res []report.CrossCheck
	for _, t := range running {
		if t.Alive() != nil || t.Endpoints.GRPCMTLS != "" {
			continue // the A/B target is for the interleaved comparison only
		}
		addr := sc.endpoint(t.Endpoints)
		if addr == "" {
			continue // the target does not serve this protocol (go-floor: HTTP/1.1 only)
		}
		argv, err := crossCheckArgs(sc, bin, addr, cfg.TmpDir)
		if err != nil {
			out.Notes = append(out.Notes, fmt.Sprintf("%s cross-check: %v", sc.Name, err))
			return res
		}
		c := report.CrossCheck{Scenario: sc.Name, Target: t.Name, Tool: sc.CrossCheck, Command: displayCommand(argv, addr, cfg.TmpDir)}
		rctx, cancel := context.WithTimeout(ctx, sc.CrossCheckTime+15*time.Second)
		output, err := exec.CommandContext(rctx, argv[0], argv[1:]...).CombinedOutput()
		cancel()
		if err == nil {
			c.RPS, c.Failed, err = parseTool(sc.CrossCheck, output)
		}
		if err != nil {
			c.Err = fmt.Sprintf("%v: %s", err, lastLine(string(output)))
		}
		cfg.Log.Info("cross-check", "scenario", sc.Name, "target", t.Name, "tool", sc.CrossCheck, "rps", int(c.RPS), "error", c.Err)
		res = append(res, c)
	}
	return res
}

func crossCheckArgs(sc Scenario, bin, addr, tmp string) ([]string, error) {
	secs := strconv.Itoa(int(sc.CrossCheckTime.Round(time.Second) / time.Second))
	url := "http://" + addr + sc.Path
	switch sc.CrossCheck {
	case "wrk":
		return []string{bin, "-t1", "-c" + strconv.Itoa(sc.Workers), "-d" + secs + "s", url}, nil
	case "h2load":
		conns := max(sc.Conns, 1)
		streams := max(sc.Workers/conns, 1)
		return []string{bin, "-c" + strconv.Itoa(conns), "-m" + strconv.Itoa(streams), "-D", secs, url}, nil
	case "ghz":
		protoset, err := writeProtoset(tmp)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(map[string]any{
			"response_size": sc.ResponseSize,
			"payload":       map[string]string{"body": base64.StdEncoding.EncodeToString(make([]byte, sc.BodySize))},
		})
		if err != nil {
			return nil, fmt.Errorf("ghz request: %w", err)
		}
		return []string{bin, "--insecure", "--protoset", protoset, "--call", "grpc.testing.TestService.UnaryCall",
			"-d", string(data), "-c", strconv.Itoa(sc.Workers), "--connections", strconv.Itoa(max(sc.Conns, 1)),
			"-z", secs + "s", "-O", "json", addr}, nil
	default:
		return nil, fmt.Errorf("unknown cross-check tool %q", sc.CrossCheck)
	}
}

// displayCommand shows the command with the target's address generalised
// and the temporary directory left out.
func displayCommand(argv []string, addr, tmp string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if i == 0 {
			a = filepath.Base(a)
		}
		a = strings.ReplaceAll(a, addr, "TARGET")
		a = strings.ReplaceAll(a, tmp+string(filepath.Separator), "")
		if strings.ContainsAny(a, " {\"") {
			a = "'" + a + "'"
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	h2loadRPS   = regexp.MustCompile(`finished in [^,]+, ([0-9.]+) req/s`)
	h2loadReqs  = regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored`)
	errNoFigure = errors.New("no throughput figure in the tool's output")
)

// parseTool reads requests per second and failures from a tool's output.
func parseTool(tool string, out []byte) (rps float64, failed int64, err error) {
	s := string(out)
	switch tool {
	case "wrk":
		m := wrkRPS.FindStringSubmatch(s)
		if m == nil {
			return 0, 0, errNoFigure
		}
		rps, _ = strconv.ParseFloat(m[1], 64)
		if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			failed += n
		}
		if m := wrkSocket.FindStringSubmatch(s); m != nil {
			for _, f := range m[1:] {
				n, _ := strconv.ParseInt(f, 10, 64)
				failed += n
			}
		}
		return rps, failed, nil
	case "h2load":
		m := h2loadRPS.FindStringSubmatch(s)
		if m == nil {
			return 0, 0, errNoFigure
		}
		rps, _ = strconv.ParseFloat(m[1], 64)
		if m := h2loadReqs.FindStringSubmatch(s); m != nil {
			a, _ := strconv.ParseInt(m[1], 10, 64)
			b, _ := strconv.ParseInt(m[2], 10, 64)
			failed = a + b
		}
		return rps, failed, nil
	case "ghz":
		var r struct {
			RPS       float64          `json:"rps"`
			ErrorDist map[string]int64 `json:"errorDistribution"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return 0, 0, fmt.Errorf("ghz json: %w", err)
		}
		for msg, n := range r.ErrorDist {
			// When -z runs out ghz cancels the calls in flight and closes
			// its connections: those errors are the tool's, not the target's.
			if strings.Contains(msg, "transport is closing") || strings.Contains(msg, "context canceled") ||
				strings.Contains(msg, "code = Canceled") || strings.Contains(msg, "use of closed network connection") {
				continue
			}
			failed += n
		}
		return r.RPS, failed, nil
	}
	return 0, 0, fmt.Errorf("unknown tool %q", tool)
}

// writeProtoset writes grpc.testing's descriptors as a FileDescriptorSet, so
// ghz needs neither .proto files nor server reflection through the proxies.
func writeProtoset(dir string) (string, error) {
	path := filepath.Join(dir, "grpc_testing.protoset")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(testpb.File_grpc_testing_test_proto)
	b, err := proto.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("protoset: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("protoset: %w", err)
	}
	return path, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
