package translate

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// The ingress-gateway entry's Meta keys we read: what Consul's entry has no
// field for. See docs/gateway.md.
const (
	// MetaHTTP3 "true" adds, for every HTTP listener (which must use TLS),
	// a QUIC listener on the same port over UDP with the same routes and
	// filters, and an alt-svc response header advertising it.
	MetaHTTP3 = "outrigger.io/http3"
	// MetaJWTProviders names jwt-provider config entries, comma-separated:
	// every request on the HTTP listeners needs a valid token from one of
	// them (envoy.filters.http.jwt_authn).
	MetaJWTProviders = "outrigger.io/jwt-providers"
	// MetaJWTClaimHeaders copies claims of a valid token into request
	// headers: "x-user=sub,x-team=org.team" (header=claim, dotted paths
	// reach nested claims).
	MetaJWTClaimHeaders = "outrigger.io/jwt-claim-headers"
	// MetaRateLimit is a local rate limit on the HTTP listeners, one
	// bucket for the gateway: "<n>/<unit>" with unit s, m, h or a Go
	// duration of at least 50ms ("100/s", "20/500ms"). Over it: 429.
	MetaRateLimit = "outrigger.io/rate-limit"
	// MetaRateLimitBurst is the bucket's size, default the rate's n.
	MetaRateLimitBurst = "outrigger.io/rate-limit-burst"
	// MetaTLSCertFile and MetaTLSKeyFile name PEM files, read by the
	// gateway proxy, that TLS listeners serve instead of the gateway's
	// Connect CA leaf. Both or neither.
	MetaTLSCertFile = "outrigger.io/tls-cert-file"
	MetaTLSKeyFile  = "outrigger.io/tls-key-file"
)

// Names of what the gateway's meta adds.
const (
	jwtAuthnFilterName       = "envoy.filters.http.jwt_authn"
	localRateLimitFilterName = "envoy.filters.http.local_ratelimit"
	// jwksClusterPrefix prefixes a remote JWKS's cluster, as in Consul.
	jwksClusterPrefix = "jwks_cluster_"
	// minFillInterval is the proxy's (and Envoy's) shortest fill interval.
	minFillInterval = 50 * time.Millisecond
)

// gatewayOptions is what an ingress-gateway entry's Meta asks for, built
// into filters and clusters.
type gatewayOptions struct {
	http3             bool
	certFile, keyFile string
	// httpFilters go before the router on every HTTP listener.
	httpFilters []*hcmv3.HttpFilter
	// jwksClusters fetch the remote key sets.
	jwksClusters []*clusterv3.Cluster
}

// gatewayOptionsOf reads e's Meta. An invalid value is an *EntryError
// naming the key, as is a missing or untranslatable jwt-provider.
func gatewayOptionsOf(m *model.Mesh, e *api.IngressGatewayConfigEntry) (*gatewayOptions, error) {
	ref := entryRef{api.IngressGateway, e.Name}
	o := &gatewayOptions{}
	if v, ok := e.Meta[MetaHTTP3]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, entryErr(ref, "Meta[%q]: %q is not a boolean", MetaHTTP3, v)
		}
		o.http3 = b
	}
	o.certFile, o.keyFile = strings.TrimSpace(e.Meta[MetaTLSCertFile]), strings.TrimSpace(e.Meta[MetaTLSKeyFile])
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, entryErr(ref, "Meta: %s and %s go together", MetaTLSCertFile, MetaTLSKeyFile)
	}
	if v, ok := e.Meta[MetaRateLimit]; ok {
		f, err := rateLimitFilter(v, e.Meta[MetaRateLimitBurst])
		if err != nil {
			return nil, entryErr(ref, "Meta[%q]: %v", MetaRateLimit, err)
		}
		o.httpFilters = append(o.httpFilters, f)
	} else if _, ok := e.Meta[MetaRateLimitBurst]; ok {
		return nil, entryErr(ref, "Meta[%q] needs %s", MetaRateLimitBurst, MetaRateLimit)
	}
	if v := strings.TrimSpace(e.Meta[MetaJWTProviders]); v != "" {
		claims, err := claimHeaders(e.Meta[MetaJWTClaimHeaders])
		if err != nil {
			return nil, entryErr(ref, "Meta[%q]: %v", MetaJWTClaimHeaders, err)
		}
		f, clusters, err := jwtFilter(m, ref, strings.Split(v, ","), claims)
		if err != nil {
			return nil, err
		}
		o.httpFilters = append(o.httpFilters, f)
		o.jwksClusters = clusters
	} else if _, ok := e.Meta[MetaJWTClaimHeaders]; ok {
		return nil, entryErr(ref, "Meta[%q] needs %s", MetaJWTClaimHeaders, MetaJWTProviders)
	}
	return o, nil
}

// parseRate reads "<n>/<unit>".
func parseRate(v string) (n uint32, every time.Duration, err error) {
	count, unit, ok := strings.Cut(strings.TrimSpace(v), "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not <n>/<unit> (e.g. 100/s)", v)
	}
	c, err := strconv.ParseUint(strings.TrimSpace(count), 10, 32)
	if err != nil || c == 0 {
		return 0, 0, fmt.Errorf("%q: the count must be a whole number from 1 to %d", v, uint32(math.MaxUint32))
	}
	switch unit = strings.TrimSpace(unit); unit {
	case "s":
		every = time.Second
	case "m":
		every = time.Minute
	case "h":
		every = time.Hour
	default:
		if every, err = time.ParseDuration(unit); err != nil {
			return 0, 0, fmt.Errorf("%q: unit %q is not s, m, h or a duration", v, unit)
		}
	}
	if every < minFillInterval {
		return 0, 0, fmt.Errorf("%q: the interval must be at least %v", v, minFillInterval)
	}
	return uint32(c), every, nil
}

// rateLimitFilter is one token bucket for every request on the listener:
// n tokens back every interval, up to burst (default n), enforced, with
// the x-ratelimit headers on every response.
func rateLimitFilter(rate, burst string) (*hcmv3.HttpFilter, error) {
	n, every, err := parseRate(rate)
	if err != nil {
		return nil, err
	}
	max := n
	if burst = strings.TrimSpace(burst); burst != "" {
		b, err := strconv.ParseUint(burst, 10, 32)
		if err != nil || b == 0 {
			return nil, fmt.Errorf("burst %q (%s) must be a whole number from 1 to %d", burst, MetaRateLimitBurst, uint32(math.MaxUint32))
		}
		max = uint32(b)
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	cfg, err := marshalAny(&localrlv3.LocalRateLimit{
		StatPrefix: "gateway_rate_limit",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     max,
			TokensPerFill: wrapperspb.UInt32(n),
			FillInterval:  durationpb.New(every),
		},
		FilterEnabled:           all,
		FilterEnforced:          all,
		EnableXRatelimitHeaders: ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: localRateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}, nil
}

// claimHeaders reads "header=claim,...".
func claimHeaders(v string) ([]*jwtv3.JwtClaimToHeader, error) {
	var out []*jwtv3.JwtClaimToHeader
	for _, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		h, c, ok := strings.Cut(pair, "=")
		h, c = strings.TrimSpace(h), strings.TrimSpace(c)
		if !ok || h == "" || c == "" {
			return nil, fmt.Errorf("%q is not header=claim", pair)
		}
		out = append(out, &jwtv3.JwtClaimToHeader{HeaderName: h, ClaimName: c})
	}
	return out, nil
}

// jwtFilter is jwt_authn with the named providers: every request needs a
// valid token from one of them.
func jwtFilter(m *model.Mesh, ref entryRef, names []string, claims []*jwtv3.JwtClaimToHeader) (*hcmv3.HttpFilter, []*clusterv3.Cluster, error) {
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}}
	var reqs []*jwtv3.JwtRequirement
	var clusters []*clusterv3.Cluster
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, dup := cfg.Providers[name]; dup {
			continue
		}
		e := m.JWTProviders[name]
		if e == nil {
			return nil, nil, entryErr(ref, "Meta[%q]: no jwt-provider config entry named %q", MetaJWTProviders, name)
		}
		p, c, err := jwtProvider(e, claims)
		if err != nil {
			return nil, nil, err
		}
		cfg.Providers[name] = p
		if c != nil {
			clusters = append(clusters, c)
		}
		reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}})
	}
	if len(reqs) == 0 {
		return nil, nil, entryErr(ref, "Meta[%q]: no provider named", MetaJWTProviders)
	}
	req := reqs[0]
	if len(reqs) > 1 {
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
			RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs},
		}}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	a, err := marshalAny(cfg)
	if err != nil {
		return nil, nil, err
	}
	return &hcmv3.HttpFilter{Name: jwtAuthnFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, clusters, nil
}

// jwtProvider maps one jwt-provider entry, and its remote key set's
// cluster when it has one. CacheConfig and RetryPolicy are not translated
// (the proxy has neither).
func jwtProvider(e *api.JWTProviderConfigEntry, claims []*jwtv3.JwtClaimToHeader) (*jwtv3.JwtProvider, *clusterv3.Cluster, error) {
	ref := entryRef{api.JWTProvider, e.Name}
	p := &jwtv3.JwtProvider{
		Issuer:         e.Issuer,
		Audiences:      e.Audiences,
		ClaimToHeaders: claims,
	}
	if e.ClockSkewSeconds > 0 {
		p.ClockSkewSeconds = uint32(min(e.ClockSkewSeconds, math.MaxUint32))
	}
	if f := e.Forwarding; f != nil {
		p.ForwardPayloadHeader = f.HeaderName
		p.PadForwardPayloadHeader = f.PadForwardPayloadHeader
	}
	for i, l := range e.Locations {
		switch {
		case l == nil:
		case l.Header != nil:
			if l.Header.Name == "" {
				return nil, nil, entryErr(ref, "Locations[%d].Header has no name", i)
			}
			p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: l.Header.Name, ValuePrefix: l.Header.ValuePrefix})
			p.Forward = p.Forward || l.Header.Forward
		case l.QueryParam != nil:
			p.FromParams = append(p.FromParams, l.QueryParam.Name)
		case l.Cookie != nil:
			p.FromCookies = append(p.FromCookies, l.Cookie.Name)
		}
	}
	ks := e.JSONWebKeySet
	switch {
	case ks == nil || ks.Local == nil && ks.Remote == nil:
		return nil, nil, entryErr(ref, "JSONWebKeySet: neither Local nor Remote")
	case ks.Local != nil:
		switch {
		case ks.Local.Filename != "":
			p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: ks.Local.Filename}}}
		case ks.Local.JWKS != "":
			// Consul keeps the set base64-encoded.
			raw, err := base64.StdEncoding.DecodeString(ks.Local.JWKS)
			if err != nil {
				return nil, nil, entryErr(ref, "JSONWebKeySet.Local.JWKS is not base64: %v", err)
			}
			p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: inlineString(string(raw))}
		default:
			return nil, nil, entryErr(ref, "JSONWebKeySet.Local: neither JWKS nor Filename")
		}
		return p, nil, nil
	}
	r := ks.Remote
	c, err := jwksCluster(ref, e.Name, r)
	if err != nil {
		return nil, nil, err
	}
	remote := &jwtv3.RemoteJwks{HttpUri: &corev3.HttpUri{
		Uri:              r.URI,
		HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: c.GetName()},
		Timeout:          durationpb.New(time.Duration(max(r.RequestTimeoutMs, 0)) * time.Millisecond),
	}}
	if r.CacheDuration > 0 {
		remote.CacheDuration = durationpb.New(r.CacheDuration)
	}
	if r.FetchAsynchronously {
		remote.AsyncFetch = &jwtv3.JwksAsyncFetch{}
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: remote}
	return p, c, nil
}

// jwksCluster reaches a remote key set's host: STATIC for an IP, else
// STRICT_DNS (or the entry's JWKSCluster.DiscoveryType); TLS for https,
// verified with JWKSCluster.TLSCertificates.TrustedCA when given.
func jwksCluster(ref entryRef, provider string, r *api.RemoteJWKS) (*clusterv3.Cluster, error) {
	u, err := url.Parse(r.URI)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, entryErr(ref, "JSONWebKeySet.Remote.URI %q is not an http:// or https:// URL", r.URI)
	}
	host, port, err := hostPort(u.Host, u.Scheme)
	if err != nil {
		return nil, entryErr(ref, "JSONWebKeySet.Remote.URI %q: %v", r.URI, err)
	}
	discovery := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		discovery = clusterv3.Cluster_STATIC
	}
	connectTimeout := defaultConnectTimeout
	jc := r.JWKSCluster
	if jc != nil {
		switch jc.DiscoveryType {
		case "":
		case api.DiscoveryTypeStatic:
			discovery = clusterv3.Cluster_STATIC
		case api.DiscoveryTypeStrictDNS:
			discovery = clusterv3.Cluster_STRICT_DNS
		case api.DiscoveryTypeLogicalDNS:
			discovery = clusterv3.Cluster_LOGICAL_DNS
		default:
			return nil, entryErr(ref, "JSONWebKeySet.Remote.JWKSCluster.DiscoveryType %q is not supported (STATIC, STRICT_DNS, LOGICAL_DNS)", jc.DiscoveryType)
		}
		if jc.ConnectTimeout > 0 {
			connectTimeout = jc.ConnectTimeout
		}
	}
	name := jwksClusterPrefix + provider
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}}}},
		},
	}
	if u.Scheme == "https" {
		ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}
		if r.UseSNI {
			ctx.Sni = host
		}
		if jc != nil && jc.TLSCertificates != nil {
			tc := jc.TLSCertificates
			if tc.CaCertificateProviderInstance != nil {
				return nil, entryErr(ref, "JSONWebKeySet.Remote.JWKSCluster.TLSCertificates.CaCertificateProviderInstance is not supported: use TrustedCA")
			}
			if ca := tc.TrustedCA; ca != nil {
				var src *corev3.DataSource
				switch {
				case ca.Filename != "":
					src = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca.Filename}}
				case ca.InlineString != "":
					src = inlineString(ca.InlineString)
				case len(ca.InlineBytes) > 0:
					src = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.InlineBytes}}
				default:
					return nil, entryErr(ref, "JSONWebKeySet.Remote.JWKSCluster.TLSCertificates.TrustedCA: only Filename, InlineString or InlineBytes are supported")
				}
				ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
					ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: src},
				}
			}
		}
		ts, err := transportSocket(ctx)
		if err != nil {
			return nil, fmt.Errorf("translate: cluster %q: %w", name, err)
		}
		c.TransportSocket = ts
	}
	return c, nil
}

// transportSocketNamed is transportSocket under another socket name.
func transportSocketNamed(name string, ctx proto.Message) (*corev3.TransportSocket, error) {
	ts, err := transportSocket(ctx)
	if err != nil {
		return nil, err
	}
	ts.Name = name
	return ts, nil
}
