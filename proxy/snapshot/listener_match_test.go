package snapshot

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// hcmFilterJSON is an HTTP connection manager network filter with an
// inline route table; fields are added to its typed_config.
func hcmFilterJSON(fields string) string {
	return `{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"statPrefix": "x", "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
		"routeConfig": {"name": "r", "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "directResponse": {"status": 200}}]}]}` + fields + `}}`
}

// matchListener decodes a listener named "l" with the given filter chains
// (JSON array elements).
func matchListener(t *testing.T, chains string) *listenerv3.Listener {
	t.Helper()
	var l listenerv3.Listener
	js := `{"name": "l", "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 0}}, "filterChains": [` + chains + `]}`
	if err := protojson.Unmarshal([]byte(js), &l); err != nil {
		t.Fatalf("listener JSON: %v\n%s", err, js)
	}
	return &l
}

// TestFilterChainMatchCheckedOnConversion: a match the chain could never
// serve fails conversion (so validate exits 1 and an xDS update is
// NACKed) with the field's path, not only when the listener starts.
func TestFilterChainMatchCheckedOnConversion(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeTestCert(t, dir)
	tlsSocket := `"transportSocket": {"name": "envoy.transport_sockets.tls", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"commonTlsContext": {"tlsCertificates": [{"certificateChain": {"filename": "` + cert + `"}, "privateKey": {"filename": "` + key + `"}}]}}}`
	httpChain := func(match, socket string) string {
		s := `{"filterChainMatch": ` + match
		if socket != "" {
			s += `, ` + socket
		}
		return s + `, "filters": [` + hcmFilterJSON("") + `]}`
	}
	tcpChain := func(match, socket string) string {
		s := `{"filterChainMatch": ` + match
		if socket != "" {
			s += `, ` + socket
		}
		return s + `, "filters": [` + tcpFilter(`, "cluster": "a"`) + `]}`
	}
	tests := []struct {
		name, chains string
		path, reason string // path "" when the listener is valid
	}{
		{"sni with tls", httpChain(`{"serverNames": ["a"]}`, tlsSocket), "", ""},
		{"tls with tls", httpChain(`{"transportProtocol": "tls", "applicationProtocols": ["h2"]}`, tlsSocket), "", ""},
		{"raw_buffer plaintext", httpChain(`{"transportProtocol": "raw_buffer"}`, ""), "", ""},
		{"sni passthrough", tcpChain(`{"serverNames": ["a"], "transportProtocol": "tls"}`, ""), "", ""},
		{"sni without tls", `{"filters": [` + hcmFilterJSON("") + `]}, ` + httpChain(`{"serverNames": ["a"]}`, ""),
			"listeners[0].filter_chains[1].filter_chain_match.server_names", "needs a TLS transport_socket"},
		{"alpn without tls", httpChain(`{"applicationProtocols": ["h2"]}`, ""),
			"listeners[0].filter_chains[0].filter_chain_match.application_protocols", "needs a TLS transport_socket"},
		{"tls without context", httpChain(`{"transportProtocol": "tls"}`, ""),
			"listeners[0].filter_chains[0].filter_chain_match.transport_protocol", `"tls" on a chain without a TLS transport_socket`},
		{"raw_buffer with tls", httpChain(`{"transportProtocol": "raw_buffer"}`, tlsSocket),
			"listeners[0].filter_chains[0].filter_chain_match.transport_protocol", `"raw_buffer" on a chain with a TLS transport_socket`},
		{"raw_buffer with tls on tcp", tcpChain(`{"transportProtocol": "raw_buffer"}`, tlsSocket),
			"listeners[0].filter_chains[0].filter_chain_match.transport_protocol", `"raw_buffer" on a chain with a TLS transport_socket`},
		{"raw_buffer with sni on tcp", tcpChain(`{"transportProtocol": "raw_buffer", "serverNames": ["a"]}`, ""),
			"listeners[0].filter_chains[0].filter_chain_match.transport_protocol", `"raw_buffer" with server_names`},
		// A transport_socket that does not convert is reported once, where
		// it fails: not again as server_names without TLS.
		{"sni with a transport socket that does not convert", httpChain(`{"serverNames": ["a"]}`, `"transportSocket": {"name": "envoy.transport_sockets.tls"}`),
			"listeners[0].filter_chains[0].transport_socket.typed_config", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := matchListener(t, tt.chains)
			if _, err := resource.Validate("", l); err != nil {
				t.Fatalf("resource.Validate: %v", err)
			}
			_, err := Build([]*listenerv3.Listener{l}, nil, staticClusterProto(t, "a"))
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				return
			}
			var inv *resource.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Build = %v; want an InvalidError at %s", err, tt.path)
			}
			if len(inv.Fields) != 1 || inv.Fields[0].Path != tt.path || !strings.Contains(inv.Fields[0].Reason, tt.reason) {
				t.Errorf("errors %v; want exactly %s: ...%s", inv.Fields, tt.path, tt.reason)
			}
			// The xDS path (one listener, paths relative to it) refuses it too.
			if _, err := ConvertListener(l); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tt.path, "listeners[0].")) {
				t.Errorf("ConvertListener = %v; want an error at %s", err, strings.TrimPrefix(tt.path, "listeners[0]."))
			}
		})
	}
}

// TestHCMIdleTimeoutZero: common_http_protocol_options.idle_timeout unset
// is Envoy's 1h; an explicit 0s disables it (a zero IdleTimeout, which the
// listener no longer turns into a default).
func TestHCMIdleTimeoutZero(t *testing.T) {
	for _, tt := range []struct {
		fields string
		want   time.Duration
	}{
		{``, time.Hour},
		{`, "commonHttpProtocolOptions": {}`, time.Hour},
		{`, "commonHttpProtocolOptions": {"idleTimeout": "0s"}`, 0},
		{`, "commonHttpProtocolOptions": {"idleTimeout": "30s"}`, 30 * time.Second},
	} {
		out, err := ConvertListener(matchListener(t, `{"filters": [`+hcmFilterJSON(tt.fields)+`]}`))
		if err != nil {
			t.Fatalf("%s: %v", tt.fields, err)
		}
		if got := out.Config.FilterChains[0].HTTP.IdleTimeout; got != tt.want {
			t.Errorf("%q: IdleTimeout %s, want %s", tt.fields, got, tt.want)
		}
	}
}

// TestInternalAddressPrefixLen: a cidr_ranges entry without prefix_len is
// a /0 (CidrRange: "Defaults to 0 when unset"), as in RBAC and
// prefix_ranges; a bad entry names its field.
func TestInternalAddressPrefixLen(t *testing.T) {
	conv := func(ranges string) ([]netip.Prefix, error) {
		out, err := ConvertListener(matchListener(t, `{"filters": [`+hcmFilterJSON(`, "internalAddressConfig": {"cidrRanges": [`+ranges+`]}`)+`]}`))
		if err != nil {
			return nil, err
		}
		return out.HTTP[0].InternalAddresses, nil
	}
	got, err := conv(`{"addressPrefix": "0.0.0.0"}, {"addressPrefix": "10.1.2.3", "prefixLen": 8}, {"addressPrefix": "fd00::1", "prefixLen": 128}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::1/128")}
	if !slices.Equal(got, want) {
		t.Errorf("InternalAddresses = %v, want %v", got, want)
	}
	for _, tt := range []struct{ ranges, path string }{
		{`{"addressPrefix": "10.1.2.3", "prefixLen": 33}`, "internal_address_config.cidr_ranges[0].prefix_len"},
		{`{"addressPrefix": "10.0.0.0/8"}`, "internal_address_config.cidr_ranges[0].address_prefix"},
		// Unset, the length is 0: every client would be internal.
		{`{"addressPrefix": "10.1.2.3"}`, "internal_address_config.cidr_ranges[0].prefix_len"},
	} {
		if _, err := conv(tt.ranges); err == nil || !strings.Contains(err.Error(), tt.path+": ") {
			t.Errorf("%s: err = %v, want one at %s", tt.ranges, err, tt.path)
		}
	}
}
