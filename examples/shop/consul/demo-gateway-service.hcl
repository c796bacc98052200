# The edge gateway of scripts/demo-shop.sh, registered the way Consul
# registers an ingress gateway; an outrigger bootstrapped with
# -proxy-id shop-edge-1 serves it (listeners from demo-gateway.hcl).
# outrigger_admin is its admin address, where the dashboard scrapes it.
service {
  kind    = "ingress-gateway"
  name    = "shop-edge"
  id      = "shop-edge-1"
  address = "127.0.0.1"
  port    = 18080
  meta    = { outrigger_admin = "127.0.0.1:19290" }
}
