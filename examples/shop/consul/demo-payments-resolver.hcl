# payments-resolver.hcl plus failover between the versions, for
# scripts/demo-shop.sh: when one version has no healthy instance (the demo
# kills payments v1), its share of the split goes to the other version
# instead of failing (Envoy priorities: the subset's own instances first,
# the other subset's when none is healthy).
Kind           = "service-resolver"
Name           = "payments"
DefaultSubset  = "v1"
ConnectTimeout = "2s"
Subsets = {
  v1 = { Filter = "Service.Meta.version == v1" }
  v2 = { Filter = "Service.Meta.version == v2" }
}
Failover = {
  v1 = { ServiceSubset = "v2" }
  v2 = { ServiceSubset = "v1" }
}
