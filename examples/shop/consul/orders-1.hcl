# orders: gRPC on 127.0.0.1:9202, /metrics and /healthz on 9212. It reaches payments
# and users through its sidecar: -payments-addr 127.0.0.1:9302 -users-url http://127.0.0.1:9301.
service {
  name = "orders"
  id   = "orders-1"
  port = 9202
  meta = { version = "v1" }
  check {
    name     = "HTTP /healthz (admin)"
    http     = "http://127.0.0.1:9212/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21202
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19202" }
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21202", interval = "1s" },
        { name = "Connect Sidecar Aliasing orders-1", alias_service = "orders-1" },
      ]
      proxy {
        upstreams = [
          { destination_name = "users",    local_bind_port = 9301 },
          { destination_name = "payments", local_bind_port = 9302 },
        ]
      }
    }
  }
}
