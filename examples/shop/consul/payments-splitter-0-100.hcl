# Canary step: payments v1 0%, v2 100%.
Kind = "service-splitter"
Name = "payments"
Splits = [
  { Weight = 0, ServiceSubset = "v1" },
  { Weight = 100, ServiceSubset = "v2" },
]
