# notifications: HTTP on 127.0.0.1:9205; consumes order.created from NATS JetStream
# (reached directly, not through the mesh).
service {
  name = "notifications"
  id   = "notifications-1"
  port = 9205
  meta = { version = "v1" }
  check {
    name     = "HTTP /healthz"
    http     = "http://127.0.0.1:9205/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21205
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19205" }
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21205", interval = "1s" },
        { name = "Connect Sidecar Aliasing notifications-1", alias_service = "notifications-1" },
      ]
    }
  }
}
