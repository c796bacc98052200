package h2xconnect_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/outrigger-mesh/outrigger/internal/h2xconnect"
)

func TestWithSetting(t *testing.T) {
	for _, c := range []struct {
		in, want string
		changed  bool
	}{
		{"", "http2xconnect=1", true},
		{"  ", "http2xconnect=1", true},
		{"inittrace=1", "inittrace=1,http2xconnect=1", true},
		{"http2xconnect=0", "http2xconnect=0", false},
		{"a=1, http2xconnect=0,b=2", "a=1, http2xconnect=0,b=2", false},
		{"http2xconnect=1", "http2xconnect=1", false},
		{"xhttp2xconnect=0", "xhttp2xconnect=0,http2xconnect=1", true},
	} {
		got, changed := h2xconnect.WithSetting(c.in)
		if got != c.want || changed != c.changed {
			t.Errorf("withSetting(%q) = %q, %v; want %q, %v", c.in, got, changed, c.want, c.changed)
		}
	}
}

// TestServerAdvertisesExtendedConnect: net/http's HTTP/2 server in this
// process (whose net/http initialized after this package) sends
// SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 in its first SETTINGS frame. The test
// is an external package on purpose: an internal test's imports (net/http
// here) become the package's own and would initialize before it.
func TestServerAdvertisesExtendedConnect(t *testing.T) {
	if !strings.Contains(os.Getenv("GODEBUG"), h2xconnect.Setting) {
		t.Fatalf("GODEBUG = %q after init, want it to contain %q", os.Getenv("GODEBUG"), h2xconnect.Setting)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(l)
	defer srv.Close()

	if v, ok := firstSettings(t, l.Addr().String())[http2.SettingEnableConnectProtocol]; !ok || v != 1 {
		t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL = %d (sent %v), want 1", v, ok)
	}
}

// firstSettings speaks h2c prior knowledge to addr and returns the values of
// the server's first SETTINGS frame.
func firstSettings(t *testing.T, addr string) map[http2.SettingID]uint32 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, bufio.NewReader(c))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	got := map[http2.SettingID]uint32{}
	sf.ForeachSetting(func(s http2.Setting) error {
		got[s.ID] = s.Val
		return nil
	})
	return got
}

// TestXNetServerAdvertisesExtendedConnect: the same for
// golang.org/x/net/http2's server.
func TestXNetServerAdvertisesExtendedConnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				(&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: http.NotFoundHandler()})
			}()
		}
	}()
	if v, ok := firstSettings(t, l.Addr().String())[http2.SettingEnableConnectProtocol]; !ok || v != 1 {
		t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL = %d (sent %v), want 1", v, ok)
	}
}

// TestOptOut: a process started with GODEBUG=http2xconnect=0 keeps the
// feature off (this test binary re-run as a child).
func TestOptOut(t *testing.T) {
	if os.Getenv("H2XCONNECT_CHILD") == "1" {
		if h2xconnect.Applied {
			t.Fatal("Applied with http2xconnect=0 in GODEBUG")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.NotFoundHandler(), Protocols: new(http.Protocols)}
		srv.Protocols.SetUnencryptedHTTP2(true)
		go srv.Serve(l)
		defer srv.Close()
		if _, ok := firstSettings(t, l.Addr().String())[http2.SettingEnableConnectProtocol]; ok {
			t.Fatal("SETTINGS_ENABLE_CONNECT_PROTOCOL sent despite http2xconnect=0")
		}
		return
	}
	if !h2xconnect.Applied {
		t.Fatal("init did not apply the setting in the parent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOptOut$", "-test.count=1")
	cmd.Env = append(os.Environ(), "H2XCONNECT_CHILD=1", "GODEBUG=http2xconnect=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
