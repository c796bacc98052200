# orders speaks gRPC.
Kind     = "service-defaults"
Name     = "orders"
Protocol = "grpc"

# A passive health check on orders' calls to payments: the first failure
# (a connect failure, a reset, or the sidecar's trailers-only UNAVAILABLE
# for a payments instance whose app is gone) ejects that instance for a
# second, so the router's retries go to the failover priority
# (demo-payments-resolver.hcl) instead of the dead instance in the second
# before Consul's health check notices it.
UpstreamConfig {
  Overrides = [
    {
      Name = "payments"
      PassiveHealthCheck {
        Interval                = "1s"
        MaxFailures             = 1
        EnforcingConsecutive5xx = 100
        MaxEjectionPercent      = 100
        BaseEjectionTime        = "1s"
      }
    }
  ]
}
