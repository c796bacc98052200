# The shop's edge for scripts/demo-shop.sh: an ingress gateway ("shop-edge",
# registered by demo-gateway-service.hcl and served by an outrigger) with
# users on an HTTP listener and orders on a gRPC listener, each answering any
# host. Every request needs a JWT from the "shop-demo-idp" jwt-provider (the
# demo writes that entry with a key pair it makes at start) and is counted by
# a local rate limit: 50 a second, bursts of 50, per listener; over it, 429.
# See docs/gateway.md for the Meta keys.
Kind = "ingress-gateway"
Name = "shop-edge"
Meta = {
  "outrigger.io/jwt-providers"     = "shop-demo-idp"
  "outrigger.io/jwt-claim-headers" = "x-user=sub"
  "outrigger.io/rate-limit"        = "50/s"
  "outrigger.io/rate-limit-burst"  = "50"
}
Listeners = [
  {
    Port     = 18080
    Protocol = "http"
    Services = [{ Name = "users", Hosts = ["*"] }]
  },
  {
    Port     = 18081
    Protocol = "grpc"
    Services = [{ Name = "orders", Hosts = ["*"] }]
  },
]
