# analytics speaks HTTP/1.1.
Kind     = "service-defaults"
Name     = "analytics"
Protocol = "http"
