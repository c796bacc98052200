// Command orders is the shop's order service over gRPC
// (outrigger.shop.v1.Orders). CreateOrder optionally checks the user with
// users (HTTP), charges through payments (gRPC) under an idempotency key
// derived from the order id, stores the order in SQLite and publishes
// order.created to NATS JetStream with the W3C trace context in the
// message headers. Upstreams are plain addresses: on the mesh, the local
// ports of the sidecar's upstream listeners.
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/orders"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("orders", orders.Run) }
