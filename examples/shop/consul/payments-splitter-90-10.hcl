# Canary step: payments v1 90%, v2 10%.
Kind = "service-splitter"
Name = "payments"
Splits = [
  { Weight = 90, ServiceSubset = "v1" },
  { Weight = 10, ServiceSubset = "v2" },
]
