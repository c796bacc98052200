package sidecarboot

import (
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// What tests use (no admin listener, delta) loads in the proxy as asked;
// errors name the addresses as the caller does. outrigger-cp's bootstrap
// command is tested with its defaults in controlplane/cmd/outrigger-cp.
func TestConfig(t *testing.T) {
	bs, err := Config(Options{ID: "web-1", Service: "web", XDSAddr: "127.0.0.1:18000", Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if bs.GetAdmin() != nil {
		t.Errorf("admin %v without an AdminAddr", bs.GetAdmin())
	}
	out, err := YAML(bs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.Load("", string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b.ADS == nil || !b.ADS.Delta || b.ADS.Cluster != XDSCluster || b.Node.ID != "web-1" || b.Node.Cluster != "web" || b.Admin != "" {
		t.Errorf("loaded %+v, ADS %+v", b, b.ADS)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{ID: "p", Service: "s", XDSAddr: "nohost"}, `xds address "nohost"`},
		{Options{ID: "p", Service: "s", XDSAddr: "127.0.0.1:1", AdminAddr: "localhost:2"}, `admin address "localhost:2": the admin listener needs an IP address`},
		{Options{ID: "p", Service: "s", XDSAddr: "x", XDSAddrName: "-xds"}, `-xds "x"`},
		{Options{ID: "p", Service: "s", XDSAddr: "127.0.0.1:0"}, "the port must be 1-65535"},
	} {
		if _, err := Config(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}
