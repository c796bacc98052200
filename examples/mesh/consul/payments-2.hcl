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

    }
  }
}
