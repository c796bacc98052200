// Package layering holds the test that keeps imports pointing down
// (STYLE.md): building blocks never see Envoy protos, xds/ never imports the
// binaries' packages, and heavy dependencies stay in the one package that
// owns them.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/outrigger-mesh/outrigger/"

// buildingBlocks know only plain Go config types.
var buildingBlocks = []string{
	"proxy/router", "proxy/cluster", "proxy/lb", "proxy/transport", "proxy/listener",
	"proxy/forward", "proxy/hcm", "proxy/telemetry", "proxy/admin", "proxy/httpwire", "proxy/listener/h1",
	"proxy/healthcheck", "proxy/outlier", "proxy/fault", "proxy/tcpproxy", "proxy/grpcweb", "proxy/h3",
	"proxy/tracing", "proxy/rbac", "proxy/secret", "proxy/jwtauthn", "proxy/ratelimit", "proxy/cors", "proxy/origdst", "proxy/redirect",
}

// deps lists every package pkg depends on, transitively.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestBuildingBlocksDoNotSeeEnvoyProtos(t *testing.T) {
	for _, pkg := range buildingBlocks {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, "github.com/envoyproxy/") {
				t.Errorf("%s depends on %s: only proxy/snapshot, proxy/bootstrap and xds/ may see Envoy protos", pkg, d)
				break
			}
			for _, up := range []string{"proxy/server", "proxy/snapshot", "proxy/bootstrap", "proxy/cmd/"} {
				if strings.HasPrefix(d, mod+up) {
					t.Errorf("%s imports %s: imports must point down", pkg, d)
				}
			}
		}
	}
}

func TestOwnershipOfHeavyDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		rel := strings.TrimPrefix(pkg, mod)
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(rel, "xds/") && (strings.HasPrefix(imp, mod+"proxy/") || strings.HasPrefix(imp, mod+"controlplane/")):
				t.Errorf("%s imports %s: nothing under xds/ imports proxy/ or controlplane/", rel, imp)
			case strings.HasPrefix(imp, "github.com/quic-go/") && !strings.HasPrefix(rel, "proxy/h3") && !strings.HasPrefix(rel, "bench/"):
				t.Errorf("%s imports %s: only proxy/h3 imports quic-go", rel, imp)
			case strings.HasPrefix(imp, "github.com/hashicorp/consul/") && !strings.HasPrefix(rel, "controlplane/") &&
				!strings.HasPrefix(rel, "internal/consultest") && !strings.HasPrefix(rel, "bench/"):
				// The model holds consul/api's own types, so the control
				// plane reads them everywhere; the proxy never does.
				t.Errorf("%s imports %s: only controlplane/, internal/consultest and bench/ import consul/api", rel, imp)
			}
		}
	}
}
