# users: HTTP/JSON on 127.0.0.1:9201 (SQLite + Redis; Redis is reached directly,
# not through the mesh), behind its outrigger sidecar.
service {
  name = "users"
  id   = "users-1"
  port = 9201
  meta = { version = "v1" }
  check {
    name     = "HTTP /healthz"
    http     = "http://127.0.0.1:9201/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21201
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19201" }
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21201", interval = "1s" },
        { name = "Connect Sidecar Aliasing users-1", alias_service = "users-1" },
      ]
    }
  }
}
