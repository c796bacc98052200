package resource

// The tcpproxy feature's part of the support table: its typed extensions,
// its messages, and the fields it implements on core messages (merged by
// name into Messages).
var (
	tcpProxyExtensions []Extension
	tcpProxyMessages   []Message
)
