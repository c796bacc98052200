// Command analytics consumes order.created events with its own durable
// JetStream consumer and serves aggregates over HTTP: orders per minute,
// revenue, the p50/p99 of order latency and the payments versions that
// took the charges.
//
//	GET /stats -> Stats as JSON
//	GET /metrics, /healthz
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/analytics"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("analytics", analytics.Run) }
