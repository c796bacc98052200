package resource

// The SDS feature's part of the support table (see table_grpcweb.go).
var (
	sdsExtensions []Extension
	sdsMessages   []Message
)
