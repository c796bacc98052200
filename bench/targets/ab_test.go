package targets

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

func TestABBootstrapLoads(t *testing.T) {
	dir := t.TempDir()
	mc, err := WriteMeshCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	for hop, tc := range map[int]struct {
		plainUp, mtlsUp string
		want            []string
	}{
		1: {"127.0.0.1:10002", "127.0.0.1:10003", []string{"UpstreamTlsContext", "exact: \"" + mc.Server.SpiffeID + "\"", "port_value: 10003"}},
		2: {"127.0.0.1:8082", "127.0.0.1:8082", []string{"DownstreamTlsContext", "require_client_certificate: true"}},
	} {
		conf, err := abSidecar(hop, abPorts{admin: 9901, plain: 10000 + 2*hop, mtls: 10001 + 2*hop}, tc.plainUp, tc.mtlsUp, mc)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(conf, w) {
				t.Errorf("hop %d lacks %q", hop, w)
			}
		}
		// Exactly one side of one path is TLS: the plaintext path must not be.
		if n := strings.Count(conf, "transport_socket:"); n != 1 {
			t.Errorf("hop %d has %d transport sockets, want 1", hop, n)
		}
		path := filepath.Join(dir, fmt.Sprintf("hop%d.yaml", hop))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := bootstrap.Load(path, ""); err != nil {
			t.Fatalf("outrigger rejects hop %d of the A/B target: %v\n%s", hop, err, conf)
		}
	}
	if _, err := abSidecar(1, abPorts{1, 2, 3}, "nohost", "127.0.0.1:1", mc); err == nil {
		t.Error("a bad upstream address was accepted")
	}
}

// TestOutriggerAB runs the A/B target on a built outrigger: gRPC flows on
// both paths, and only the mTLS path's server sidecar listener refuses a
// plaintext caller.
func TestOutriggerAB(t *testing.T) {
	tg, err := StartOutriggerAB(context.Background(), t.TempDir(), plainBackend(t), outriggerBin(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Error(err)
		}
	})
	if len(tg.PIDs()) != 2 || tg.Endpoints.GRPC == "" || tg.Endpoints.GRPCMTLS == "" || tg.Endpoints.HTTP1 != "" {
		t.Fatalf("pids %v, endpoints %+v", tg.PIDs(), tg.Endpoints)
	}
	for _, addr := range []string{tg.Endpoints.GRPC, tg.Endpoints.GRPCMTLS} {
		sendThree(t, loadgen.Target{Protocol: loadgen.GRPC, Addr: addr, ResponseSize: 10}, tg.Name)
	}

	// hop2.yaml's ports: admin, the plaintext listener, the mTLS listener.
	conf, err := os.ReadFile(filepath.Join(filepath.Dir(tg.Procs[1].LogPath), "hop2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := regexp.MustCompile(`port_value: (\d+)`).FindAllStringSubmatch(string(conf), -1)
	if len(ports) < 3 {
		t.Fatalf("listener ports missing in hop2.yaml")
	}
	answers := func(port string) bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "HTTP/")
	}
	if !answers(ports[1][1]) {
		t.Error("the plaintext path's server sidecar does not answer a plaintext caller")
	}
	if answers(ports[2][1]) {
		t.Error("the mTLS path's server sidecar answers a plaintext caller")
	}
}
