package faultxds

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

const at = "http_filters[0].typed_config"

func ptr[T any](v T) *T { return &v }

func pct(n uint32, d typev3.FractionalPercent_DenominatorType) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: d}
}

func fixedDelay(d time.Duration, p *typev3.FractionalPercent) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         p,
	}
}

func httpAbort(s uint32, p *typev3.FractionalPercent) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: s}, Percentage: p}
}

func TestFromProtoFull(t *testing.T) {
	m := &faultv3.HTTPFault{
		Delay:           fixedDelay(2*time.Second, pct(10, typev3.FractionalPercent_HUNDRED)),
		Abort:           &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: pct(5, typev3.FractionalPercent_TEN_THOUSAND), ResponseBody: "chaos"},
		UpstreamCluster: "payments",
		Headers: []*routev3.HeaderMatcher{
			{Name: "x-chaos", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "on"}},
			{Name: "x-tenant", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ac"}, IgnoreCase: true}}},
			{Name: "x-id", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]+"}}},
			{Name: "x-debug", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}},
			{Name: "x-n", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 1, End: 10}}, InvertMatch: true},
			{Name: "x-any"},
		},
		DownstreamNodes:               []string{"web-1"},
		MaxActiveFaults:               wrapperspb.UInt32(3),
		DisableDownstreamClusterStats: true,
	}
	cfg, err := FromProto(at, m)
	if err != nil {
		t.Fatal(err)
	}
	re := cfg.Headers[2].String.Regex
	if re == nil || re.String() != "[0-9]+" {
		t.Fatalf("regex = %v", re)
	}
	cfg.Headers[2].String.Regex = nil
	want := &fault.Config{
		Delay:           &fault.Delay{Fixed: 2 * time.Second, Percent: fault.Fraction{Numerator: 10, Denominator: 100}},
		Abort:           &fault.Abort{Kind: fault.AbortHTTP, HTTPStatus: 503, Percent: fault.Fraction{Numerator: 5, Denominator: 10000}, Body: "chaos"},
		UpstreamCluster: "payments",
		Headers: []router.HeaderMatcher{
			{Name: "x-chaos", String: &router.StringMatcher{Kind: router.StringExact, Value: "on"}},
			{Name: "x-tenant", String: &router.StringMatcher{Kind: router.StringPrefix, Value: "ac", IgnoreCase: true}},
			{Name: "x-id", String: &router.StringMatcher{Kind: router.StringRegex}},
			{Name: "x-debug", Present: ptr(false)},
			{Name: "x-n", Range: &router.Int64Range{Start: 1, End: 10}, Invert: true},
			{Name: "x-any", Present: ptr(true)},
		},
		DownstreamNodes: []string{"web-1"},
		MaxActiveFaults: ptr(uint32(3)),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("FromProto =\n%#v\nwant\n%#v", cfg, want)
	}
}

func TestFromProtoForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *faultv3.HTTPFault
		want *fault.Config
	}{
		// Istio's shape: an empty filter, with faults in the routes'
		// typed_per_filter_config.
		{"empty", &faultv3.HTTPFault{}, &fault.Config{}},
		{"header controlled", &faultv3.HTTPFault{
			Delay: &faultcommonv3.FaultDelay{
				FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommonv3.FaultDelay_HeaderDelay{}},
				Percentage:         pct(100, typev3.FractionalPercent_HUNDRED),
			},
			Abort: &faultv3.FaultAbort{
				ErrorType:  &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}},
				Percentage: pct(250000, typev3.FractionalPercent_MILLION),
			},
		}, &fault.Config{
			Delay: &fault.Delay{FromHeader: true, Percent: fault.Fraction{Numerator: 100, Denominator: 100}},
			Abort: &fault.Abort{Kind: fault.AbortHeader, Percent: fault.Fraction{Numerator: 250000, Denominator: 1000000}},
		}},
		{"grpc status, percentage unset is 0%", &faultv3.HTTPFault{
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}},
		}, &fault.Config{
			Abort: &fault.Abort{Kind: fault.AbortGRPC, GRPCStatus: 14, Percent: fault.Fraction{Denominator: 100}},
		}},
		{"max_active_faults 0", &faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(0)}, &fault.Config{MaxActiveFaults: ptr(uint32(0))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromProto(at, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FromProto =\n%#v\nwant\n%#v", got, tc.want)
			}
		})
	}
}

// A configuration as written in an Envoy file, through Any, as the
// connection manager's converter will receive it.
func TestFromProtoJSONThroughAny(t *testing.T) {
	const js = `{
		"max_active_faults": 100,
		"abort": {"header_abort": {}, "percentage": {"numerator": 100}},
		"delay": {"fixed_delay": "0.5s", "percentage": {"numerator": 20, "denominator": "TEN_THOUSAND"}},
		"headers": [{"name": "x-chaos", "string_match": {"exact": "yes"}}]
	}`
	var src faultv3.HTTPFault
	if err := protojson.Unmarshal([]byte(js), &src); err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&src)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetTypeUrl() != TypeURL {
		t.Errorf("type URL %q, want %q", a.GetTypeUrl(), TypeURL)
	}
	var m faultv3.HTTPFault
	if err := a.UnmarshalTo(&m); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromProto(at, &m)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Delay.Fixed != 500*time.Millisecond || cfg.Delay.Percent != (fault.Fraction{Numerator: 20, Denominator: 10000}) ||
		cfg.Abort.Kind != fault.AbortHeader || *cfg.MaxActiveFaults != 100 || cfg.Headers[0].String.Value != "yes" {
		t.Errorf("FromProto = %+v", cfg)
	}
	if _, err := fault.Compile(cfg); err != nil {
		t.Errorf("Compile: %v", err)
	}
}

func TestFromProtoRejectsUnsupported(t *testing.T) {
	withUnknown := &faultv3.HTTPFault{}
	withUnknown.ProtoReflect().SetUnknown([]byte{0xf8, 0x7f, 0x01}) // field 1023, varint 1
	for _, tc := range []struct {
		name     string
		m        *faultv3.HTTPFault
		wantPath string
		wantMsg  string
	}{
		{"response_rate_limit", &faultv3.HTTPFault{ResponseRateLimit: &faultcommonv3.FaultRateLimit{
			LimitType: &faultcommonv3.FaultRateLimit_FixedLimit_{FixedLimit: &faultcommonv3.FaultRateLimit_FixedLimit{LimitKbps: 64}}}},
			at + ".response_rate_limit", "response rate limiting is not supported"},
		{"filter_metadata", &faultv3.HTTPFault{FilterMetadata: &structpb.Struct{}}, at + ".filter_metadata", "dynamic metadata is not supported"},
		{"delay_percent_runtime", &faultv3.HTTPFault{DelayPercentRuntime: "k"}, at + ".delay_percent_runtime", "no runtime"},
		{"abort_percent_runtime", &faultv3.HTTPFault{AbortPercentRuntime: "k"}, at + ".abort_percent_runtime", "no runtime"},
		{"delay_duration_runtime", &faultv3.HTTPFault{DelayDurationRuntime: "k"}, at + ".delay_duration_runtime", "no runtime"},
		{"abort_http_status_runtime", &faultv3.HTTPFault{AbortHttpStatusRuntime: "k"}, at + ".abort_http_status_runtime", "no runtime"},
		{"abort_grpc_status_runtime", &faultv3.HTTPFault{AbortGrpcStatusRuntime: "k"}, at + ".abort_grpc_status_runtime", "no runtime"},
		{"max_active_faults_runtime", &faultv3.HTTPFault{MaxActiveFaultsRuntime: "k"}, at + ".max_active_faults_runtime", "no runtime"},
		{"response_rate_limit_percent_runtime", &faultv3.HTTPFault{ResponseRateLimitPercentRuntime: "k"}, at + ".response_rate_limit_percent_runtime", "no runtime"},
		{"custom string matcher", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Custom{}}}}}},
			at + ".headers[0].string_match.custom", "is not supported"},
		{"unknown fields", withUnknown, at, "unknown to this version of the API"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := FromProto(at, tc.m)
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			var u *resource.UnsupportedError
			if !errors.As(err, &u) {
				t.Fatalf("%T %v is not an *resource.UnsupportedError", err, err)
			}
			if len(u.Fields) != 1 || u.Fields[0].Path != tc.wantPath || !strings.Contains(u.Fields[0].Reason, tc.wantMsg) {
				t.Errorf("error %q, want one at %s containing %q", err, tc.wantPath, tc.wantMsg)
			}
		})
	}
}

// Every unsupported field is reported at once, and unsupported wins over
// invalid (as resource.Check does).
func TestFromProtoReportsAll(t *testing.T) {
	_, err := FromProto(at, &faultv3.HTTPFault{
		Abort:               httpAbort(99, nil),
		DelayPercentRuntime: "a",
		AbortPercentRuntime: "b",
	})
	var u *resource.UnsupportedError
	if !errors.As(err, &u) || len(u.Fields) != 2 {
		t.Fatalf("error %v, want two unsupported fields", err)
	}
}

func TestFromProtoRejectsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *faultv3.HTTPFault
		want string // the whole error text
	}{
		{"nil", nil, at + ": no fault configuration"},
		{"http_status 99", &faultv3.HTTPFault{Abort: httpAbort(99, pct(1, 0))},
			at + ".abort.http_status: 99 is not a valid HTTP status (200-599)"},
		{"http_status 600", &faultv3.HTTPFault{Abort: httpAbort(600, nil)},
			at + ".abort.http_status: 600 is not a valid HTTP status (200-599)"},
		{"grpc_status 17", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 17}}},
			at + ".abort.grpc_status: 17 is not a gRPC status code (0-16)"},
		{"abort without status", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{Percentage: pct(1, 0)}},
			at + ".abort: one of http_status, grpc_status and header_abort is required"},
		{"delay without specifier", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{Percentage: pct(1, 0)}},
			at + ".delay: one of fixed_delay and header_delay is required"},
		{"fixed_delay 0", &faultv3.HTTPFault{Delay: fixedDelay(0, nil)},
			at + ".delay.fixed_delay: 0s: must be greater than 0"},
		{"fixed_delay negative", &faultv3.HTTPFault{Delay: fixedDelay(-time.Second, nil)},
			at + ".delay.fixed_delay: -1s: must be greater than 0"},
		{"fixed_delay out of range", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: &durationpb.Duration{Seconds: 1, Nanos: -1}}}},
			at + ".delay.fixed_delay: invalid duration (seconds 1, nanos -1)"},
		{"denominator", &faultv3.HTTPFault{Delay: fixedDelay(time.Second, pct(1, 7))},
			at + ".delay.percentage.denominator: unknown denominator 7"},
		{"bad regex", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "("}}}}},
			at + ".headers[0].safe_regex_match.regex: invalid regex \"(\": error parsing regexp: missing closing ): `(`"},
		{"bad string_match regex", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x"}, {Name: "y",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a**"}}}}}}},
			at + ".headers[1].string_match.safe_regex.regex: invalid regex \"a**\": error parsing regexp: invalid nested repetition operator: `**`"},
		{"string_match without pattern", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{}}}}},
			at + ".headers[0].string_match: exact, prefix, suffix, contains or safe_regex is required"},
		// Found by fault.Config.Validate, reported at the full path.
		{"header without name", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x"}, {}}},
			at + ".headers[1].name: header name is required"},
		{"empty prefix", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: ""}}}},
			at + ".headers[0].string_match.prefix: value must not be empty"},
		{"pseudo-header", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: ":status"}}},
			at + `.headers[0].name: pseudo-header ":status" is not supported in header matchers (supported: :authority, :method, :path, :scheme)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := FromProto(at, tc.m)
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			var inv *resource.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("%T %v is not an *resource.InvalidError", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
			if cfg != nil {
				t.Error("a config came back with the error")
			}
		})
	}
}

// The error's paths can be prefixed again by the caller, as proxy/snapshot
// does with every converter error.
func TestFromProtoErrorPrefix(t *testing.T) {
	_, err := FromProto("http_filters[1].typed_config", &faultv3.HTTPFault{Abort: httpAbort(99, nil)})
	err = resource.Prefix(err, "listeners[0].filter_chains[0].filters[0].typed_config")
	want := "listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.abort.http_status: 99 is not a valid HTTP status (200-599)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
