Kind     = "service-defaults"
Name     = "greeter"
Protocol = "grpc"
