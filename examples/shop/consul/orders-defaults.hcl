# orders speaks gRPC.
Kind     = "service-defaults"
Name     = "orders"
Protocol = "grpc"
