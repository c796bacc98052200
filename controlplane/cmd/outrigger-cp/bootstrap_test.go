package main

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"bytes"
	"errors"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// lookupFunc is a proxyLookup for unit tests (the real one is tested
// against a Consul agent in consul_test.go).
type lookupFunc func(string) (string, error)

func (f lookupFunc) ProxyDestination(id string) (string, error) { return f(id) }

func TestBootstrapLoadsInProxy(t *testing.T) {
	for _, tc := range []struct {
		name, xds, admin string
		wantType         clusterv3.Cluster_DiscoveryType
	}{
		{"defaults", defaultXDSAddr, defaultAdminAddr, clusterv3.Cluster_STATIC},
		{"host name", "outrigger-cp.mesh.svc:18000", "127.0.0.1:19100", clusterv3.Cluster_STRICT_DNS},
		{"ipv6", "[::1]:18000", "[::1]:19001", clusterv3.Cluster_STATIC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := bootstrapConfig("web-sidecar-proxy", "web", tc.xds, tc.admin)
			if err != nil {
				t.Fatal(err)
			}
			out, err := sidecarboot.YAML(bs)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bootstrap.Load("", string(out))
			if err != nil {
				t.Fatalf("the proxy refuses the bootstrap: %v\n%s", err, out)
			}
			if b.Node.ID != "web-sidecar-proxy" || b.Node.Cluster != "web" {
				t.Errorf("node %+v", b.Node)
			}
			if b.ADS == nil || b.ADS.Cluster != sidecarboot.XDSCluster || b.ADS.Delta || !b.ADS.LDS || !b.ADS.CDS {
				t.Errorf("ADS %+v", b.ADS)
			}
			if b.Admin != tc.admin {
				t.Errorf("admin %q, want %q", b.Admin, tc.admin)
			}
			// The YAML round-trips to the same proto, and the proto validates.
			js, err := yaml.YAMLToJSON(out)
			if err != nil {
				t.Fatal(err)
			}
			back := &bootstrapv3.Bootstrap{}
			if err := protojson.Unmarshal(js, back); err != nil {
				t.Fatal(err)
			}
			if err := back.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			c := back.GetStaticResources().GetClusters()[0]
			if c.GetType() != tc.wantType || c.GetConnectTimeout().AsDuration().Seconds() != 1 ||
				c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] == nil {
				t.Errorf("xds cluster %v", c)
			}
			for _, want := range []string{"api_type: GRPC", "transport_api_version: V3", "resource_api_version: V3",
				"cluster_name: outrigger_xds", "explicit_http_config:", "http2_protocol_options: {}", "ads: {}"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("YAML lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestBootstrapConfigRejects(t *testing.T) {
	for _, tc := range []struct{ xds, admin, want string }{
		{"127.0.0.1", defaultAdminAddr, `-xds-addr "127.0.0.1"`},
		{"127.0.0.1:0", defaultAdminAddr, "port must be 1-65535"},
		{"127.0.0.1:99999", defaultAdminAddr, "port must be 1-65535"},
		{":18000", defaultAdminAddr, "a host is required"},
		{defaultXDSAddr, "localhost:19001", "needs an IP address"},
		{defaultXDSAddr, "127.0.0.1:http", `-admin-addr "127.0.0.1:http"`},
		{defaultXDSAddr, "", `-admin-addr "": the admin listener's IP:port is required`},
	} {
		if _, err := bootstrapConfig("p", "web", tc.xds, tc.admin); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("xds %q admin %q: %v, want %q", tc.xds, tc.admin, err, tc.want)
		}
	}
}

func TestRunBootstrap(t *testing.T) {
	lookup := lookupFunc(func(id string) (string, error) {
		if id == "web-sidecar-proxy" {
			return "web", nil
		}
		return "", errors.New(`no service with ID "` + id + `" is registered in Consul`)
	})
	var stdout, stderr bytes.Buffer
	if code := runBootstrap([]string{"-proxy-id", "web-sidecar-proxy", "-xds-addr", "10.0.0.2:18000"}, &stdout, &stderr, lookup); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := bootstrap.Load("", stdout.String())
	if err != nil {
		t.Fatal(err)
	}
	if b.Node.Cluster != "web" || !strings.Contains(stdout.String(), "address: 10.0.0.2") {
		t.Errorf("bootstrap:\n%s", stdout.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-proxy-id", "db-sidecar-proxy"}, `no service with ID "db-sidecar-proxy"`},
		{[]string{"-proxy-id", "web-sidecar-proxy", "-admin-addr", "admin:1"}, "needs an IP address"},
		{[]string{"-proxy-id", "x", "extra"}, `unexpected argument "extra"`},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := runBootstrap(tc.args, &stdout, &stderr, lookup); code != 1 {
			t.Errorf("%v: exit %d, want 1", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("%v: stderr %q (want %q), stdout %q", tc.args, stderr.String(), tc.want, stdout.String())
		}
	}
	stderr.Reset()
	if code := runBootstrap([]string{"-proxy-id", "x", "-consul-addr", "ftp://h:1"}, &stdout, &stderr, nil); code != 1 ||
		!strings.Contains(stderr.String(), "Unknown protocol scheme") {
		t.Errorf("bad consul address: exit %d, %q", code, stderr.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRunBootstrapWriteError(t *testing.T) {
	var stderr bytes.Buffer
	lookup := lookupFunc(func(string) (string, error) { return "web", nil })
	if code := runBootstrap([]string{"-proxy-id", "p"}, failingWriter{}, &stderr, lookup); code != 1 || !strings.Contains(stderr.String(), "disk full") {
		t.Errorf("exit %d, %q", code, stderr.String())
	}
}

func TestDestinationRequired(t *testing.T) {
	// Consul refuses to register such a proxy; the check guards older data.
	if _, err := destination("web-sidecar-proxy", ""); err == nil || !strings.Contains(err.Error(), "no proxy.destination_service_name") {
		t.Errorf("empty destination: %v", err)
	}
}
