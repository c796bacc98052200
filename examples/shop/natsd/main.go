// Command natsd is the shop's message queue for the demo: an embedded NATS
// server with JetStream, storing on disk so that streams and durable
// consumers survive its restart.
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/natsd"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("natsd", natsd.Run) }
