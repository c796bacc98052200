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

    }
  }
}
