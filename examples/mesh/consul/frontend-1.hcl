# frontend: the demo client (meshclient) reaches payments and greeter through its sidecar's upstream listeners.
service {
  name = "frontend"
  id   = "frontend-1"
  port = 9100
  meta = { version = "v1" }

  connect {
    sidecar_service {
      port = 21000
      proxy {
        upstreams = [
          { destination_name = "payments", local_bind_port = 9191 },
          { destination_name = "greeter",  local_bind_port = 9192 },
        ]
      }
    }
  }
}
