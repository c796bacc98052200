# Canary step: payments v1 100%, v2 0%.
Kind = "service-splitter"
Name = "payments"
Splits = [
  { Weight = 100, ServiceSubset = "v1" },
  { Weight = 0, ServiceSubset = "v2" },
]
