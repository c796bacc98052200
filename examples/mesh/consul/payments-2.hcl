# payments v2: the canary, same service name, meta.version = v2.
service {
  name = "payments"
  id   = "payments-2"
  port = 9102
  meta = { version = "v2" }
  check {
    name     = "HTTP /healthz"
    http     = "http://127.0.0.1:9102/healthz"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21102
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v2", outrigger_admin = "127.0.0.1:19102" }
      # Consul's default sidecar checks, with a 1 s interval instead of 10 s
      # so the demo's sidecars turn healthy as soon as they listen.
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21102", interval = "1s" },
        { name = "Connect Sidecar Aliasing payments-2", alias_service = "payments-2" },
      ]
    }
  }
}
