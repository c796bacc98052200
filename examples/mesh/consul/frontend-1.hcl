# frontend: the demo client (meshclient) reaches payments and greeter through its sidecar's upstream listeners.
service {
  name = "frontend"
  id   = "frontend-1"
  port = 9100
  meta = { version = "v1" }

  connect {
    sidecar_service {
      port = 21000
      # The sidecar's own meta replaces the one it would inherit, so version is
      # repeated (resolver subsets filter sidecars on it); outrigger_admin is
      # the sidecar's admin address, where the dashboard scrapes its metrics.
      meta = { version = "v1", outrigger_admin = "127.0.0.1:19100" }
      # Consul's default sidecar checks, with a 1 s interval instead of 10 s
      # so the demo's sidecars turn healthy as soon as they listen.
      checks = [
        { name = "Connect Sidecar Listening", tcp = "127.0.0.1:21000", interval = "1s" },
        { name = "Connect Sidecar Aliasing frontend-1", alias_service = "frontend-1" },
      ]
      proxy {
        upstreams = [
          { destination_name = "payments", local_bind_port = 9191 },
          { destination_name = "greeter",  local_bind_port = 9192 },
        ]
      }
    }
  }
}
