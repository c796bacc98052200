# Every service speaks HTTP unless its service-defaults say otherwise.
Kind      = "proxy-defaults"
Name      = "global"
Config {
  protocol = "http"
}
