// Command users is the shop's user directory over HTTP/JSON: users live in
// SQLite, reads go through a Redis read-through cache, and when Redis is
// down it answers from SQLite alone (slower, and counted).
//
//	POST /users      {"name": "...", "email": "..."} -> 201 {"id": ...}
//	GET  /users/{id} -> 200 user, X-Cache: hit | miss | error
//	GET  /metrics, /healthz
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/users"
)

func main() { shopmain.Main("users", users.Run) }
