package snapshot

import (
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/outrigger-mesh/outrigger/proxy/fault/faultxds"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// httpFilters accepts fault and grpc_web filters, in any order and number,
// followed by the router, last: other filters are not implemented and the
// support table already rejects their types. It returns the filters before
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
			c.fail(resource.Join(fp, "typed_config"), "%s is not supported yet", a.GetTypeUrl())
		}
	}
	return out
}
