package resource

// The grpcweb feature's part of the support table: its typed extensions,
// its messages, and the fields it implements on core messages (merged by
// name into Messages).
var (
	grpcWebExtensions []Extension
	grpcWebMessages   []Message
)
