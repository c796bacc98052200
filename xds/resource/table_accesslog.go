package resource

// The access-log formats' part of the support table: extensions, messages,
// and the fields they add to core messages (merged by name into Messages).
var (
	accessLogExtensions []Extension
	accessLogMessages   []Message
)
