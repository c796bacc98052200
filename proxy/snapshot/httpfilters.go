package snapshot

import (
	"strings"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/fault/faultxds"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// httpFilters accepts the filters we implement (fault, grpc_web and those
// httpFilterKindOf lists), in any order and number, followed by the
// router, last: the support table already rejects other types. It returns the filters before
// the router, in order.
func (c *converter) httpFilters(p string, filters []*hcmv3.HttpFilter) []hcm.Filter {
	if len(filters) == 0 {
		c.fail(p, "the envoy.filters.http.router filter is required")
		return nil
	}
	var out []hcm.Filter
	for i, f := range filters {
		fp := resource.Index(p, i)
		a := f.GetTypedConfig()
		if a == nil {
			c.fail(fp, "filter %q needs a typed_config", f.GetName())
			continue
		}
		last := i == len(filters)-1
		switch a.GetTypeUrl() {
		case resource.TypeURLPrefix + string(resource.RouterFilter):
			if !last {
				c.fail(fp, "the router must be the last http filter")
			}
		case resource.TypeURLPrefix + string(resource.HTTPFault):
			tp := resource.Join(fp, "typed_config")
			var m faultv3.HTTPFault
			if !c.unpack(tp, a, &m) {
				continue
			}
			cfg, err := faultxds.FromProto(tp, &m)
			if err != nil {
				c.failErr(err)
				continue
			}
			out = append(out, hcm.Filter{Fault: cfg})
			if last {
				c.fail(fp, "the router must be the last http filter")
			}
		case resource.TypeURLPrefix + string(resource.GRPCWeb):
			// GrpcWeb has no fields; unpacking checks the payload is one.
			var m grpcwebv3.GrpcWeb
			if !c.unpack(resource.Join(fp, "typed_config"), a, &m) {
				continue
			}
			out = append(out, hcm.Filter{GRPCWeb: true})
			if last {
				c.fail(fp, "the router must be the last http filter")
			}
		default:
			tp := resource.Join(fp, "typed_config")
			k := httpFilterKindOf(a.GetTypeUrl())
			if k.filter == nil {
				c.fail(tp, "%s is not supported yet", a.GetTypeUrl())
				continue
			}
			if f := k.filter(c, tp, f.GetName(), a); f != nil {
				out = append(out, hcm.Filter{HTTP: f})
			}
			if last {
				c.fail(fp, "the router must be the last http filter")
			}
		}
	}
	return out
}

// httpFilterKind converts one kind of HTTP filter built as an
// hcm.HTTPFilter, and its typed_per_filter_config.
type httpFilterKind struct {
	// filter converts the filter's typed_config (at path p); name is the
	// filter's name in http_filters. It records its errors on c and may
	// return nil after one.
	filter func(c *converter, p, name string, a *anypb.Any) hcm.HTTPFilter
	// perRoute converts a typed_per_filter_config entry of the kind's
	// per-route message; the result is what the filter finds through
	// hcm.FilterInput.PerRoute.
	perRoute func(c *converter, p string, a *anypb.Any) any
}

// httpFilterKindOf is the one list of the HTTP filters built as
// hcm.HTTPFilters, by the type URL of their typed_config.
func httpFilterKindOf(typeURL string) httpFilterKind {
	switch strings.TrimPrefix(typeURL, resource.TypeURLPrefix) {
	case string(resource.JWTAuthn):
		return httpFilterKind{filter: (*converter).jwtAuthnFilter}
	case string(resource.HTTPRBAC):
		return httpFilterKind{filter: (*converter).rbacHTTPFilter}
	case string(resource.HTTPLocalRateLimit):
		return httpFilterKind{filter: (*converter).localRateLimitFilter}
	case string(resource.CORS):
		return httpFilterKind{filter: (*converter).corsFilter}
	}
	return httpFilterKind{}
}

// perRouteKindOf finds the converter of a typed_per_filter_config entry
// by its type URL (each filter's per-route message).
func perRouteKindOf(typeURL string) func(c *converter, p string, a *anypb.Any) any {
	switch strings.TrimPrefix(typeURL, resource.TypeURLPrefix) {
	case string(resource.JWTAuthnPerRoute):
		return (*converter).jwtAuthnPerRoute
	case string(resource.HTTPRBACPerRoute):
		return (*converter).rbacPerRoute
	case string(resource.HTTPLocalRateLimit):
		return (*converter).localRateLimitPerRoute
	case string(resource.CORSPolicy):
		return (*converter).corsPerRoute
	}
	return nil
}

// perFilterConfig converts a route's or virtual host's
// typed_per_filter_config.
func (c *converter) perFilterConfig(p string, m map[string]*anypb.Any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for name, a := range m {
		kp := resource.Key(p, name)
		conv := perRouteKindOf(a.GetTypeUrl())
		if conv == nil {
			c.fail(kp, "%s is not supported yet as a per-route filter config", a.GetTypeUrl())
			continue
		}
		if v := conv(c, kp, a); v != nil {
			out[name] = v
		}
	}
	return out
}
