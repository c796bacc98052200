# Retries for orders -> payments. Safe because every charge carries an
# idempotency key: a retried charge that had in fact gone through is
# answered from the stored charge, never taken twice.
Kind = "service-router"
Name = "payments"
Routes = [
  {
    Match {
      HTTP {
        PathPrefix = "/outrigger.shop.v1.Payments/"
      }
    }
    Destination {
      Service               = "payments"
      NumRetries            = 3
      RetryOnConnectFailure = true
      RetryOn               = ["unavailable", "reset"]
      RequestTimeout        = "5s"
    }
  },
]
