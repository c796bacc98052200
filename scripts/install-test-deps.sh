#!/usr/bin/env bash
# Installs the Debian packages the tests drive as real peers, when missing:
# redis-server and redis-benchmark (the TCP proxy's Redis test), ngtcp2's
# gtlsclient (a non-Go HTTP/3 client through the proxy), chromium (the
# control plane dashboard's and gRPC-Web's headless-browser tests), nftables
# and iptables (transparent capture in network namespaces), helm and
# kubeconform (the chart), kube-apiserver and etcd (the injector). Idempotent;
# uses sudo when not root. Node.js and npm (the gRPC-Web client test) come
# with the machine; the test installs its npm packages itself.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v gtlsclient >/dev/null 2>&1 || need+=(ngtcp2-client)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
	sudo=
	if [ "$(id -u)" -ne 0 ]; then
		sudo=sudo
	fi
	echo "installing ${need[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The Helm chart's tests: helm and kubeconform from the Go module proxy
# (into GOPATH/bin, where the tests look too).
gobin=$(go env GOPATH)/bin
[ -x "$gobin/helm" ] || command -v helm >/dev/null 2>&1 || go install helm.sh/helm/v3/cmd/helm@v3.22.0
[ -x "$gobin/kubeconform" ] || command -v kubeconform >/dev/null 2>&1 || go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0

# The injector's tests: a real kube-apiserver and etcd, built once and
# cached outside the work tree (~4 minutes cold).
"$(dirname "$0")/install-kube-testenv.sh" >/dev/null

