package snapshot

import (
	"strings"
	"testing"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

func TestHTTPFiltersGRPCWeb(t *testing.T) {
	filter := func(name string, m proto.Message) *hcmv3.HttpFilter {
		f := &hcmv3.HttpFilter{Name: name}
		if m != nil {
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, m)}
		}
		return f
	}
	web := func() *hcmv3.HttpFilter { return filter("envoy.filters.http.grpc_web", &grpcwebv3.GrpcWeb{}) }
	router := func() *hcmv3.HttpFilter { return filter("envoy.filters.http.router", &routerv3.Router{}) }
	abort := func() *hcmv3.HttpFilter {
		return filter("envoy.filters.http.fault", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
			Percentage: &typev3.FractionalPercent{Numerator: 100},
		}})
	}
	delay := func() *hcmv3.HttpFilter {
		return filter("envoy.filters.http.fault", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommonv3.FaultDelay_HeaderDelay{}},
		}})
	}
	kinds := func(fs []hcm.Filter) string {
		var s []string
		for _, f := range fs {
			switch {
			case f.Fault != nil && !f.GRPCWeb:
				s = append(s, "fault")
			case f.GRPCWeb && f.Fault == nil:
				s = append(s, "grpc_web")
			default:
				s = append(s, "?")
			}
		}
		return strings.Join(s, ",")
	}

	for _, tc := range []struct {
		name    string
		filters []*hcmv3.HttpFilter
		want    string
		wantErr string
	}{
		{"grpc_web alone", []*hcmv3.HttpFilter{web(), router()}, "grpc_web", ""},
		{"order kept", []*hcmv3.HttpFilter{abort(), web(), delay(), router()}, "fault,grpc_web,fault", ""},
		{"twice", []*hcmv3.HttpFilter{web(), web(), router()}, "grpc_web,grpc_web", ""},
		{"grpc_web last", []*hcmv3.HttpFilter{router(), web()}, "", "http_filters[1]: the router must be the last http filter"},
		{"no typed_config", []*hcmv3.HttpFilter{filter("envoy.filters.http.grpc_web", nil), router()}, "", "http_filters[0]: filter \"envoy.filters.http.grpc_web\" needs a typed_config"},
		{"undecodable", []*hcmv3.HttpFilter{{Name: "w", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{
			TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb", Value: []byte{0xff}}}}, router()},
			"", "http_filters[0].typed_config: cannot decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &converter{}
			got := c.httpFilters("http_filters", tc.filters)
			err := c.err()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k := kinds(got); k != tc.want {
				t.Errorf("filters %s, want %s", k, tc.want)
			}
		})
	}
}
