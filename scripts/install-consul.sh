#!/usr/bin/env bash
# Builds Consul v1.16.3 — the newest MPL-2.0 release (v1.16.4 and later are
# BUSL) — from the Go module proxy and caches the binary outside the work tree.
# Idempotent: a cached binary of the right version is reused at once.
# The last line of standard output is the absolute path of the consul binary.
#
# Environment:
#   OUTRIGGER_CACHE  cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/outrigger)
#
# A cold build takes about 5 minutes on 2 cores and ~2 GB of memory; see
# ../shared/notes/consul.md for why it is done this way (the module's replace
# directives point at nested modules the zip does not carry).
set -euo pipefail

readonly VERSION=v1.16.3
readonly MODULE=github.com/hashicorp/consul
CACHE=${OUTRIGGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger}
BIN="$CACHE/consul-$VERSION/consul"

log() { echo "install-consul: $*" >&2; }

# cached: the binary is there and is the right version. (No pipe into
# grep -q: with pipefail its early exit would SIGPIPE the writer.)
cached() {
	[[ -x $BIN ]] || return 1
	local v
	v=$("$BIN" version 2>/dev/null) || return 1
	[[ ${v%%$'\n'*} == "Consul ${VERSION}" ]]
}

if cached; then
	echo "$BIN"
	exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.consul-build.lock"
flock 9 # a second concurrent run waits, then finds the binary
if cached; then
	echo "$BIN"
	exit 0
fi

log "building Consul $VERSION from the Go module proxy (first time only, ~5 min)"
WORK=$(mktemp -d "$CACHE/consul-build.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

# Outside any module, so the download is not tied to the caller's go.mod.
DIR=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n "$DIR" && -d "$DIR" ]] || { log "go mod download gave no directory for $MODULE@$VERSION"; exit 1; }

if ! head -5 "$DIR/LICENSE" | grep -q "Mozilla Public License, version 2.0"; then
	log "refusing to build: $MODULE@$VERSION is not licensed MPL-2.0:"
	head -3 "$DIR/LICENSE" >&2
	exit 1
fi

SRC="$WORK/src"
cp -r "$DIR" "$SRC"
chmod -R u+w "$SRC"
cd "$SRC"
for m in api sdk proto-public envoyextensions troubleshoot; do
	go mod edit -dropreplace="$MODULE/$m"
done
# The nested modules come from their own tags; the checksum database has no
# entry for envoyextensions@v0.4.1, so pin all five here and build readonly.
go mod edit \
	-require="$MODULE/api@v1.25.1" \
	-require="$MODULE/sdk@v0.14.1" \
	-require="$MODULE/proto-public@v0.4.1" \
	-require="$MODULE/envoyextensions@v0.4.1" \
	-require="$MODULE/troubleshoot@v0.3.1"
cat >>go.sum <<'EOF'
github.com/hashicorp/consul/api v1.25.1 h1:CqrdhYzc8XZuPnhIYZWH45toM0LB9ZeYr/gvpLVI3PE=
github.com/hashicorp/consul/api v1.25.1/go.mod h1:iiLVwR/htV7mas/sy0O+XSuEnrdBUUydemjxcUrAt4g=
github.com/hashicorp/consul/envoyextensions v0.4.1 h1:7s3IXE+qmwjPbZPva+8BjHLrpkFrFkNE+z/6X/O6PQc=
github.com/hashicorp/consul/envoyextensions v0.4.1/go.mod h1:PkLAV99qviACPT7v8Pn7d/vacZixC8/4fuZpR7Rf7vA=
github.com/hashicorp/consul/proto-public v0.4.1 h1:k1RWFQo3uvtaLyC8ZEdP2jJOCiNp/7Tp8zz9MsjAxc8=
github.com/hashicorp/consul/proto-public v0.4.1/go.mod h1:ENwzmloQTUPAYPu7nC1mli3VY0Ny9QNi/FSzJ+KlZD0=
github.com/hashicorp/consul/sdk v0.14.1 h1:ZiwE2bKb+zro68sWzZ1SgHF3kRMBZ94TwOCFRF4ylPs=
github.com/hashicorp/consul/sdk v0.14.1/go.mod h1:vFt03juSzocLRFo59NkeQHHmQa6+g7oU0pfzdI1mUhg=
github.com/hashicorp/consul/troubleshoot v0.3.1 h1:M3sAzWRT3xXseRoa/Z8q8Kf+Ws0J1xN8nLDj0dC2UIw=
github.com/hashicorp/consul/troubleshoot v0.3.1/go.mod h1:QjmTNmf2Umo/mqTjW+EhDAHEG2l15B81CkcxhF4GALU=
EOF

mkdir -p "$(dirname "$BIN")"
CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -mod=readonly -trimpath \
	-ldflags "-s -w" -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
"$BIN" version | head -1 >&2
echo "$BIN"
