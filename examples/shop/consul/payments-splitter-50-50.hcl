# Canary step: payments v1 50%, v2 50%.
Kind = "service-splitter"
Name = "payments"
Splits = [
  { Weight = 50, ServiceSubset = "v1" },
  { Weight = 50, ServiceSubset = "v2" },
]
