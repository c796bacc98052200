#!/usr/bin/env bash
# Installs the Debian packages the tests drive as real peers, when missing:
# redis-server and redis-benchmark (the TCP proxy's Redis test), ngtcp2's
# gtlsclient (a non-Go HTTP/3 client through the proxy), chromium (the
# control plane dashboard's headless-browser test). Idempotent;
# uses sudo when not root. Node.js and npm (the gRPC-Web client test) come
# with the machine; the test installs its npm packages itself.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v gtlsclient >/dev/null 2>&1 || need+=(ngtcp2-client)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
fi
echo "installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
