# Two subsets of payments by the instances' meta; Consul evaluates the filters.
Kind           = "service-resolver"
Name           = "payments"
DefaultSubset  = "v1"
ConnectTimeout = "2s"
Subsets = {
  v1 = { Filter = "Service.Meta.version == v1" }
  v2 = { Filter = "Service.Meta.version == v2" }
}
