# notifications speaks HTTP/1.1.
Kind     = "service-defaults"
Name     = "notifications"
Protocol = "http"
