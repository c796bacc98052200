# users speaks HTTP/1.1.
Kind     = "service-defaults"
Name     = "users"
Protocol = "http"
