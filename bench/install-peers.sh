#!/usr/bin/env bash
# install-peers.sh: install the bench's peer proxies and cross-check load
# tools when they are missing. Idempotent: a second run changes nothing.
#
#   nginx, haproxy, wrk, h2load  from Debian (apt-get)
#   caddy v2.11.9, ghz v0.120.0  via `go install`, cached outside the work tree
#
# The Go tools land in ${OUTRIGGER_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger/bin};
# the bench looks there as well as on PATH.
set -euo pipefail

CADDY_VERSION=v2.11.9
GHZ_VERSION=v0.120.0
BIN_CACHE="${OUTRIGGER_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger/bin}"
GO="${GO:-go}"

have() { command -v "$1" >/dev/null 2>&1; }

# Debian packages: one `apt-get update`, and only when something is missing.
apt_missing=()
have nginx   || apt_missing+=(nginx)
have haproxy || apt_missing+=(haproxy)
have wrk     || apt_missing+=(wrk)
have h2load  || apt_missing+=(nghttp2-client)
if ((${#apt_missing[@]})); then
	if ! have apt-get; then
		echo "install-peers: apt-get not found; install ${apt_missing[*]} yourself" >&2
	else
		sudo=""
		if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
		echo "install-peers: apt-get install ${apt_missing[*]}"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
	fi
fi
# The Debian nginx package may start its system service; the bench never uses
# it (it runs its own nginx with its own config), so leave it alone.

mkdir -p "$BIN_CACHE"

# go_tool NAME MODULE@VERSION: build into the cache unless that version is there.
go_tool() {
	local name=$1 pkg=$2 version=$3
	local stamp="$BIN_CACHE/.$name.version"
	if [[ -x "$BIN_CACHE/$name" && -f "$stamp" && $(cat "$stamp") == "$version" ]]; then
		return 0
	fi
	echo "install-peers: go install $pkg@$version (a cold build takes minutes)"
	GOBIN="$BIN_CACHE" "$GO" install "$pkg@$version"
	echo "$version" >"$stamp"
}

go_tool caddy github.com/caddyserver/caddy/v2/cmd/caddy "$CADDY_VERSION"
go_tool ghz github.com/bojand/ghz/cmd/ghz "$GHZ_VERSION"

echo "install-peers: ok"
for t in nginx haproxy wrk h2load; do
	printf '  %-8s %s\n' "$t" "$(command -v "$t" || echo missing)"
done
for t in caddy ghz; do
	printf '  %-8s %s\n' "$t" "$([[ -x $BIN_CACHE/$t ]] && echo "$BIN_CACHE/$t" || echo missing)"
done
