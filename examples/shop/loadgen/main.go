// Command loadgen drives the shop at a steady rate for the demo: it creates
// users through the users API and orders through the orders API (both
// usually behind the gateway's public address) and prints one line per
// second: request rate, errors by gRPC code, p99 latency, and the share of
// orders each payments version charged (the canary split).
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/loadgen"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("loadgen", loadgen.Run) }
