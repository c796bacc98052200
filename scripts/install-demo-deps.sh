#!/usr/bin/env bash
# Installs what `make demo` (scripts/demo-shop.sh) drives besides Go and
# Consul, when missing: redis-server (the users service's cache), curl
# (the demo's probes), openssl (the edge's certificate) and sqlite3 (the
# orders/payments ledger check). Idempotent; uses sudo when not root.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
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
