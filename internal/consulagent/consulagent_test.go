package consulagent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/internal/freeport"
)

func TestFreePortsDistinct(t *testing.T) {
	p, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := freeport.Range()
	seen := map[int]bool{}
	for _, port := range []int{p.HTTP, p.GRPC, p.GRPCTLS, p.Server, p.SerfLAN, p.SerfWAN, p.DNS} {
		if port <= 0 || seen[port] {
			t.Fatalf("ports %+v: %d repeated or invalid", p, port)
		}
		if hi > lo && (port < lo || port >= hi) {
			t.Errorf("port %d outside [%d, %d), below the ephemeral range", port, lo, hi)
		}
		seen[port] = true
	}
}

func TestInstallScriptErrors(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body, wantErr string
	}{
		{"fails", "echo building >&2; echo 'go is not on PATH' >&2; exit 1", "go is not on PATH"},
		{"silent", "exit 0", "printed no binary path"},
		{"missing", "echo " + dir + "/nope", "/nope"},
		{"absent", "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := script(tc.name, tc.body)
			if tc.name == "absent" {
				p = dir + "/not-there.sh"
			}
			_, err := InstallScript(context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	got, err := InstallScript(context.Background(), script("ok", "echo log line; echo "+dir+"/ok"))
	if err != nil || got != dir+"/ok" {
		t.Fatalf("InstallScript = %q, %v; want the last stdout line", got, err)
	}
}

func TestRepoRoot(t *testing.T) {
	if _, err := RepoRoot("/"); err == nil || !strings.Contains(err.Error(), "no repository root") {
		t.Errorf("RepoRoot(/) = %v", err)
	}
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "install-consul.sh")); err != nil {
		t.Errorf("RepoRoot = %s: %v", root, err)
	}
	if _, err := Binary(context.Background(), t.TempDir()); err == nil {
		t.Error("Binary without the script succeeded")
	}
}

func TestFlagsNamePorts(t *testing.T) {
	f := strings.Join(Ports{1, 2, 3, 4, 5, 6, 7}.Flags(), " ")
	for _, want := range []string{"-http-port 1", "-https-port -1", "-grpc-port 2", "-grpc-tls-port 3", "-server-port 4", "-serf-lan-port 5", "-serf-wan-port 6", "-dns-port 7"} {
		if !strings.Contains(f, want) {
			t.Errorf("flags %q lack %q", f, want)
		}
	}
}
