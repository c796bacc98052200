# Authorization: frontend may no longer call payments. The sidecars enforce
# it (RBAC from outrigger-cp) on mTLS identities from Consul's Connect CA.
Kind = "service-intentions"
Name = "payments"
Sources = [
  { Name = "frontend", Action = "deny" },
]
