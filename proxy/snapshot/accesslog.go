package snapshot

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accessfilev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// accessLog converts one access_log[].typed_config: stdout, stderr or a
// file, with its log_format compiled (nil Format: our fixed JSON line).
func (c *converter) accessLog(p string, a *anypb.Any) (hcm.AccessLog, bool) {
	if a == nil {
		c.fail(p, "a typed_config is required")
		return hcm.AccessLog{}, false
	}
	var out hcm.AccessLog
	var lf *corev3.SubstitutionFormatString
	switch a.GetTypeUrl() {
	case resource.TypeURLPrefix + string(resource.StdoutAccessLog):
		var m streamv3.StdoutAccessLog
		if !c.unpack(p, a, &m) {
			return hcm.AccessLog{}, false
		}
		out.Path, lf = "/dev/stdout", m.GetLogFormat()
	case resource.TypeURLPrefix + string(resource.StderrAccessLog):
		var m streamv3.StderrAccessLog
		if !c.unpack(p, a, &m) {
			return hcm.AccessLog{}, false
		}
		out.Path, lf = "/dev/stderr", m.GetLogFormat()
	default:
		var f accessfilev3.FileAccessLog
		if !c.unpack(p, a, &f) {
			return hcm.AccessLog{}, false
		}
		out.Path, lf = f.GetPath(), f.GetLogFormat()
		if out.Path == "" {
			c.fail(resource.Join(p, "path"), "a file access log needs a path")
			return hcm.AccessLog{}, false
		}
	}
	if lf == nil {
		return out, true
	}
	f, ok := c.logFormat(resource.Join(p, "log_format"), lf)
	if !ok {
		return hcm.AccessLog{}, false
	}
	out.Format = f
	return out, true
}

// logFormat compiles a SubstitutionFormatString: text_format,
// text_format_source or json_format (string values only), with
// omit_empty_values.
func (c *converter) logFormat(p string, sf *corev3.SubstitutionFormatString) (*telemetry.Format, bool) {
	omit := sf.GetOmitEmptyValues()
	var (
		f   *telemetry.Format
		err error
		at  string
	)
	switch v := sf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		at = resource.Join(p, "text_format")
		f, err = telemetry.CompileText(v.TextFormat, omit)
	case *corev3.SubstitutionFormatString_TextFormatSource:
		at = resource.Join(p, "text_format_source")
		b, ok := c.dataSource(at, v.TextFormatSource)
		if !ok {
			return nil, false
		}
		f, err = telemetry.CompileText(string(b), omit)
	case *corev3.SubstitutionFormatString_JsonFormat:
		at = resource.Join(p, "json_format")
		fields, ok := c.jsonFormat(at, v.JsonFormat)
		if !ok {
			return nil, false
		}
		f, err = telemetry.CompileJSON(fields, omit)
	default:
		c.fail(p, "text_format_source, text_format or json_format is required")
		return nil, false
	}
	if err != nil {
		c.fail(at, "%v", err)
		return nil, false
	}
	return f, true
}

// jsonFormat reads a json_format Struct: every value must be a string (a
// format string); nested objects and literal numbers, booleans and nulls
// are refused.
func (c *converter) jsonFormat(p string, s *structpb.Struct) ([]telemetry.JSONField, bool) {
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]telemetry.JSONField, 0, len(keys))
	ok := true
	for _, k := range keys {
		sv, isString := s.GetFields()[k].GetKind().(*structpb.Value_StringValue)
		if !isString {
			c.fail(resource.Join(p, k), "only string values (format strings) are supported in json_format")
			ok = false
			continue
		}
		out = append(out, telemetry.JSONField{Key: k, Format: sv.StringValue})
	}
	if len(out) == 0 && ok {
		c.fail(p, "json_format needs at least one key")
		return nil, false
	}
	return out, ok
}
