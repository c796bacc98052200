// Command payments is the shop's payment service over gRPC
// (outrigger.shop.v1.Payments). Each idempotency key is charged at most
// once: the key is the primary key of the charges table in SQLite, so
// instances sharing the database file (v1 and v2 in a canary) never charge
// a key twice between them. Knobs inject latency and failures so the mesh's
// retries and breakers have something to do.
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/payments"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("payments", payments.Run) }
