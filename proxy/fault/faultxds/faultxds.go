// Package faultxds converts Envoy's HTTPFault
// (envoy.extensions.filters.http.fault.v3) into proxy/fault's Config. It
// is apart from proxy/fault so that the filter itself never sees Envoy
// protos (internal/layering). Decoding is validation: every field it does
// not implement is rejected with its path, never ignored.
package faultxds

import (
	"errors"
	"fmt"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot/matchconv"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Name is the filter's extension name.
const Name = "envoy.filters.http.fault"

// TypeURL is the Any type URL of HTTPFault.
const TypeURL = resource.TypeURLPrefix + "envoy.extensions.filters.http.fault.v3.HTTPFault"

// FromProto converts and validates m, an HTTPFault found at path p (e.g.
// "http_filters[0].typed_config"). It reports every problem at once, each
// with its full field path: an *resource.UnsupportedError when m sets a
// field Outrigger does not implement (response_rate_limit, the runtime
// key overrides, filter_metadata, fields unknown to this API version),
// else an *resource.InvalidError for values that cannot be used.
func FromProto(p string, m *faultv3.HTTPFault) (*fault.Config, error) {
	c := &converter{}
	if m == nil {
		c.invalid(p, "no fault configuration")
		return nil, c.err()
	}
	c.only(p, m, map[string]string{
		"delay":                            "",
		"abort":                            "",
		"upstream_cluster":                 "",
		"headers":                          "",
		"downstream_nodes":                 "",
		"max_active_faults":                "",
		"disable_downstream_cluster_stats": "", // operational: there are no per-downstream-cluster stats
	}, map[string]string{
		"response_rate_limit":                 "response rate limiting is not supported yet",
		"filter_metadata":                     "dynamic metadata is not supported",
		"delay_percent_runtime":               noRuntime,
		"abort_percent_runtime":               noRuntime,
		"delay_duration_runtime":              noRuntime,
		"abort_http_status_runtime":           noRuntime,
		"abort_grpc_status_runtime":           noRuntime,
		"max_active_faults_runtime":           noRuntime,
		"response_rate_limit_percent_runtime": noRuntime,
	})
	cfg := &fault.Config{
		UpstreamCluster: m.GetUpstreamCluster(),
		DownstreamNodes: slices.Clone(m.GetDownstreamNodes()),
	}
	if d := m.GetDelay(); d != nil {
		cfg.Delay = c.delay(resource.Join(p, "delay"), d)
	}
	if a := m.GetAbort(); a != nil {
		cfg.Abort = c.abort(resource.Join(p, "abort"), a)
	}
	for i, h := range m.GetHeaders() {
		cfg.Headers = append(cfg.Headers, c.headerMatcher(resource.Index(resource.Join(p, "headers"), i), h))
	}
	if v := m.GetMaxActiveFaults(); v != nil {
		c.only(resource.Join(p, "max_active_faults"), v, map[string]string{"value": ""}, nil)
		n := v.GetValue()
		cfg.MaxActiveFaults = &n
	}
	if len(c.unsupported) == 0 && len(c.invalidFields) == 0 {
		// What the proto cannot say wrong is checked once, by the filter.
		if err := cfg.Validate(); err != nil {
			var ce *fault.ConfigError
			if errors.As(err, &ce) {
				c.invalid(resource.Join(p, ce.Field), "%s%s", ce.Msg, causeOf(ce))
			} else {
				c.invalid(p, "%v", err)
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

const noRuntime = "runtime overrides are not supported: Outrigger has no runtime layer"

func causeOf(ce *fault.ConfigError) string {
	if ce.Err == nil {
		return ""
	}
	return ": " + ce.Err.Error()
}

type converter struct {
	unsupported   []resource.FieldError
	invalidFields []resource.FieldError
}

func (c *converter) reject(path, reason string) {
	c.unsupported = append(c.unsupported, resource.FieldError{Path: path, Reason: reason})
}

func (c *converter) invalid(path, format string, args ...any) {
	c.invalidFields = append(c.invalidFields, resource.FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (c *converter) err() error {
	if len(c.unsupported) > 0 {
		return &resource.UnsupportedError{Fields: c.unsupported}
	}
	if len(c.invalidFields) > 0 {
		return &resource.InvalidError{Fields: c.invalidFields}
	}
	return nil
}

// only rejects every set field of m not named in allowed (reasons for the
// known unsupported ones in why), and fields unknown to this API version.
func (c *converter) only(p string, m proto.Message, allowed, why map[string]string) {
	rm := m.ProtoReflect()
	rm.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		if _, ok := allowed[name]; ok {
			return true
		}
		reason := why[name]
		if reason == "" {
			reason = "is not supported"
		}
		c.reject(resource.Join(p, name), reason)
		return true
	})
	if len(rm.GetUnknown()) > 0 {
		c.reject(p, fmt.Sprintf("%s has fields unknown to this version of the API", rm.Descriptor().Name()))
	}
}

func (c *converter) delay(p string, d *faultcommonv3.FaultDelay) *fault.Delay {
	c.only(p, d, map[string]string{"fixed_delay": "", "header_delay": "", "percentage": ""}, nil)
	out := &fault.Delay{Percent: c.fraction(resource.Join(p, "percentage"), d.GetPercentage())}
	switch s := d.GetFaultDelaySecifier().(type) {
	case *faultcommonv3.FaultDelay_FixedDelay:
		fp := resource.Join(p, "fixed_delay")
		if err := s.FixedDelay.CheckValid(); err != nil {
			// Not err's text: protobuf varies its spacing on purpose.
			c.invalid(fp, "invalid duration (seconds %d, nanos %d)", s.FixedDelay.GetSeconds(), s.FixedDelay.GetNanos())
			break
		}
		if out.Fixed = s.FixedDelay.AsDuration(); out.Fixed <= 0 {
			c.invalid(fp, "%v: must be greater than 0", out.Fixed)
		}
	case *faultcommonv3.FaultDelay_HeaderDelay_:
		c.only(resource.Join(p, "header_delay"), s.HeaderDelay, nil, nil)
		out.FromHeader = true
	default:
		c.invalid(p, "one of fixed_delay and header_delay is required")
	}
	return out
}

func (c *converter) abort(p string, a *faultv3.FaultAbort) *fault.Abort {
	c.only(p, a, map[string]string{
		"http_status": "", "grpc_status": "", "header_abort": "", "percentage": "", "response_body": "",
	}, nil)
	out := &fault.Abort{
		Percent: c.fraction(resource.Join(p, "percentage"), a.GetPercentage()),
		Body:    a.GetResponseBody(),
	}
	switch s := a.GetErrorType().(type) {
	case *faultv3.FaultAbort_HttpStatus:
		out.Kind = fault.AbortHTTP
		if s.HttpStatus < 200 || s.HttpStatus > 599 {
			c.invalid(resource.Join(p, "http_status"), "%d is not a valid HTTP status (200-599)", s.HttpStatus)
			break
		}
		out.HTTPStatus = int(s.HttpStatus)
	case *faultv3.FaultAbort_GrpcStatus:
		out.Kind = fault.AbortGRPC
		if s.GrpcStatus > 16 {
			c.invalid(resource.Join(p, "grpc_status"), "%d is not a gRPC status code (0-16)", s.GrpcStatus)
			break
		}
		out.GRPCStatus = int(s.GrpcStatus)
	case *faultv3.FaultAbort_HeaderAbort_:
		c.only(resource.Join(p, "header_abort"), s.HeaderAbort, nil, nil)
		out.Kind = fault.AbortHeader
	default:
		c.invalid(p, "one of http_status, grpc_status and header_abort is required")
	}
	return out
}

// fraction converts a FractionalPercent; unset is Envoy's default, 0 %.
func (c *converter) fraction(p string, f *typev3.FractionalPercent) fault.Fraction {
	if f == nil {
		return fault.Fraction{Denominator: 100}
	}
	c.only(p, f, map[string]string{"numerator": "", "denominator": ""}, nil)
	den, ok := matchconv.Denominator(f.GetDenominator())
	if !ok {
		c.invalid(resource.Join(p, "denominator"), "unknown denominator %d", f.GetDenominator())
		den = 100
	}
	return fault.Fraction{Numerator: f.GetNumerator(), Denominator: den}
}

// headerMatcher refuses the HeaderMatcher fields we do not implement (the
// support table does not walk a fault filter's headers) and converts it
// with proxy/snapshot's conversion.
func (c *converter) headerMatcher(p string, h *routev3.HeaderMatcher) router.HeaderMatcher {
	c.only(p, h, map[string]string{
		"name": "", "string_match": "", "present_match": "", "range_match": "", "invert_match": "",
		"treat_missing_header_as_empty": "", "exact_match": "", "prefix_match": "", "suffix_match": "",
		"contains_match": "", "safe_regex_match": "",
	}, nil)
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sp := resource.Join(p, "string_match")
		c.only(sp, s.StringMatch, map[string]string{
			"exact": "", "prefix": "", "suffix": "", "contains": "", "safe_regex": "", "ignore_case": "",
		}, nil)
		if re := s.StringMatch.GetSafeRegex(); re != nil {
			c.onlyRegex(resource.Join(sp, "safe_regex"), re)
		}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		c.onlyRegex(resource.Join(p, "safe_regex_match"), s.SafeRegexMatch)
	case *routev3.HeaderMatcher_RangeMatch:
		c.only(resource.Join(p, "range_match"), s.RangeMatch, map[string]string{"start": "", "end": ""}, nil)
	}
	return matchconv.Conv{Fail: c.invalid}.HeaderMatcher(p, h)
}

// onlyRegex refuses RegexMatcher fields other than regex (google_re2 is
// deprecated and says nothing: the engine is RE2 anyway).
func (c *converter) onlyRegex(p string, m *matcherv3.RegexMatcher) {
	c.only(p, m, map[string]string{"regex": "", "google_re2": ""}, nil)
}
