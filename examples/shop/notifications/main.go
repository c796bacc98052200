// Command notifications "sends" a message for every order: a durable
// JetStream consumer of order.created with explicit acks, so a restarted
// instance resumes where it stopped and misses no order. What it sent is
// kept in SQLite and listed over HTTP.
//
//	GET /notifications[?limit=N] -> {"count": N, "notifications": [...]}
//	GET /metrics, /healthz
package main

import (
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/notifications"
	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shopmain"
)

func main() { shopmain.Main("notifications", notifications.Run) }
