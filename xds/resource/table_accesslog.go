package resource

// The access-log formats' part of the support table: extensions, messages,
// and the fields they add to core messages (merged by name into Messages).
var (
	accessLogExtensions []Extension
	accessLogMessages   = []Message{
		{"envoy.config.accesslog.v3.AccessLog", map[string]Field{
			"typed_config": note(anyOf(StdoutAccessLog, StderrAccessLog, FileAccessLog), "without log_format, our fixed JSON line (Envoy's default is its text format); see docs/admin.md"),
		}},
		{StdoutAccessLog, map[string]Field{
			"log_format": supported,
		}},
		{StderrAccessLog, map[string]Field{
			"log_format": supported,
		}},
		{FileAccessLog, map[string]Field{
			"path":       supported,
			"log_format": supported,
		}},
		{"envoy.config.core.v3.SubstitutionFormatString", map[string]Field{
			"text_format":         note(supported, "the command operators of docs/admin.md; another is refused"),
			"text_format_source":  note(supported, "read once, when the configuration is loaded"),
			"json_format":         note(leaf, "string values only (format strings); a value that is one numeric command is a JSON number"),
			"omit_empty_values":   supported,
			"content_type":        note(ignored, "only used for local reply bodies, which access logs are not"),
			"json_format_options": supported,
		}},
		{"envoy.config.core.v3.JsonFormatOptions", map[string]Field{
			"sort_properties": note(supported, "keys are always sorted"),
		}},
	}
)
