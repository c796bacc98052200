# greeter: a gRPC app (grpc.testing.TestService) behind its sidecar; service-defaults make it grpc.
service {
  name = "greeter"
  id   = "greeter-1"
  port = 9103
  meta = { version = "v1" }
  check {
    name     = "TCP"
    tcp      = "127.0.0.1:9103"
    interval = "1s"
    timeout  = "1s"
  }
  connect {
    sidecar_service {
      port = 21103
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19103" }
      # Consul's default sidecar checks, with a 1 s interval instead of 10 s
      # so the demo's sidecars turn healthy as soon as they listen.
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21103", interval = "1s" },
        { name = "Connect Sidecar Aliasing greeter-1", alias_service = "greeter-1" },
      ]
    }
  }
}
