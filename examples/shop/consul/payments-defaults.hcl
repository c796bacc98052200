# payments speaks gRPC.
Kind     = "service-defaults"
Name     = "payments"
Protocol = "grpc"
