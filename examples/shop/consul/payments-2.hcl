# payments v2: gRPC on 127.0.0.1:9204, /metrics and /healthz on 9214.
# v1 and v2 share one SQLite file (-db), so an idempotency key is charged once
# whichever version a retry lands on.
service {
  name = "payments"
  id   = "payments-2"
  port = 9204
  meta = { version = "v2" }
  check {
    name     = "HTTP /healthz (admin)"
    http     = "http://127.0.0.1:9214/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21204
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v2", outrigger_admin = "127.0.0.1:19204" }
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21204", interval = "1s" },
        { name = "Connect Sidecar Aliasing payments-2", alias_service = "payments-2" },
      ]
    }
  }
}
