# payments v1: an httpapp instance behind its outrigger sidecar.
service {
  name = "payments"
  id   = "payments-1"
  port = 9101
  meta = { version = "v1" }
  check {
    name     = "HTTP /healthz"
    http     = "http://127.0.0.1:9101/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21101
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19101" }
      # Consul's default sidecar checks, with a 1 s interval instead of 10 s
      # so the demo's sidecars turn healthy as soon as they listen.
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21101", interval = "1s" },
        { name = "Connect Sidecar Aliasing payments-1", alias_service = "payments-1" },
      ]
    }
  }
}
