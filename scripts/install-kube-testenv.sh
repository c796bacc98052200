#!/usr/bin/env bash
# Builds a real etcd (v3.7.3) and kube-apiserver (v1.37.2) from the Go module
# proxy and caches both outside the work tree, for tests that need a real
# Kubernetes API server (the sidecar injector's integration test).
# Idempotent: cached binaries of the right versions are reused at once.
# The last line of standard output is the absolute path of the directory
# holding both binaries (usable as KUBEBUILDER_ASSETS).
#
# Environment:
#   OUTRIGGER_CACHE  cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/outrigger)
#
# A cold build takes about 4 minutes on 2 cores (~2.4 GB peak memory, ~4 GB of
# module and build caches); see ../shared/notes/kubernetes.md for why it is done
# this way: etcd's server module has replace directives (so `go install` is
# refused) and the k8s.io/kubernetes module zip carries neither staging/ nor
# vendor/, so its ./staging replaces are swapped for the published modules.
set -euo pipefail

readonly ETCD_VERSION=v3.7.3
readonly KUBE_VERSION=v1.37.2
readonly STAGING_VERSION=v0.37.2 # the k8s.io/* staging modules of KUBE_VERSION
CACHE=${OUTRIGGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger}
DIR="$CACHE/kube-testenv-$KUBE_VERSION-etcd-$ETCD_VERSION"
ETCD="$DIR/etcd"
APISERVER="$DIR/kube-apiserver"

log() { echo "install-kube-testenv: $*" >&2; }

etcd_ok() {
	[[ -x $ETCD ]] || return 1
	local v
	v=$("$ETCD" --version 2>/dev/null) || return 1
	[[ ${v%%$'\n'*} == "etcd Version: ${ETCD_VERSION#v}" ]]
}

apiserver_ok() {
	[[ -x $APISERVER ]] || return 1
	local v
	v=$("$APISERVER" --version 2>/dev/null) || return 1
	[[ $v == "Kubernetes ${KUBE_VERSION}" ]]
}

if etcd_ok && apiserver_ok; then
	echo "$DIR"
	exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
mkdir -p "$DIR"
exec 9>"$CACHE/.kube-testenv-build.lock"
flock 9 # a second concurrent run waits, then finds the binaries
if etcd_ok && apiserver_ok; then
	echo "$DIR"
	exit 0
fi

WORK=$(mktemp -d "$CACHE/kube-testenv-build.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false

if ! etcd_ok; then
	log "building etcd $ETCD_VERSION from the Go module proxy (first time only, ~30 s)"
	mkdir -p "$WORK/etcd"
	cat >"$WORK/etcd/main.go" <<'EOF'
// Command etcd runs etcd's server; a wrapper module, because a dependency's
// replace directives are ignored where `go install` of the server refuses them.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	(
		cd "$WORK/etcd"
		go mod init outrigger.local/etcd >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
		go mod tidy >&2
		go build -trimpath -ldflags "-s -w" -o "$ETCD.tmp" .
	)
	mv "$ETCD.tmp" "$ETCD"
	etcd_ok || { log "built etcd does not report version $ETCD_VERSION"; "$ETCD" --version >&2 || true; exit 1; }
fi

if ! apiserver_ok; then
	log "building kube-apiserver $KUBE_VERSION from the Go module proxy (first time only, ~3-4 min)"
	SRCDIR=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n "$SRCDIR" && -d "$SRCDIR" ]] || { log "go mod download gave no directory for k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	SRC="$WORK/kubernetes"
	cp -r "$SRCDIR" "$SRC"
	chmod -R u+w "$SRC"
	cd "$SRC"
	rm -f go.work go.work.sum
	# Every k8s.io/X => ./staging/... replace becomes a require of the
	# published module at the matching staging version.
	mapfile -t staged < <(sed -n 's/^[[:space:]]*\(k8s\.io\/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\/staging\/.*/\1/p' go.mod)
	((${#staged[@]} > 0)) || { log "found no ./staging replaces in k8s.io/kubernetes@$KUBE_VERSION's go.mod"; exit 1; }
	edits=()
	for m in "${staged[@]}"; do
		edits+=(-dropreplace="$m" -require="$m@$STAGING_VERSION")
	done
	log "replacing ${#staged[@]} ./staging modules with their published @$STAGING_VERSION"
	go mod edit "${edits[@]}"
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	pkg=k8s.io/component-base/version
	cpkg=k8s.io/client-go/pkg/version
	ldflags="-s -w"
	for p in $pkg $cpkg; do
		ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
	done
	GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$APISERVER.tmp" ./cmd/kube-apiserver
	mv "$APISERVER.tmp" "$APISERVER"
	apiserver_ok || { log "built kube-apiserver does not report version $KUBE_VERSION"; "$APISERVER" --version >&2 || true; exit 1; }
fi

log "$("$ETCD" --version | head -1); $("$APISERVER" --version)"
echo "$DIR"
