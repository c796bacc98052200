#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and through wait_until look unreachable
# The mesh demo behind `make demo`: a Consul dev agent, outrigger-cp, three
# example apps (payments v1 and v2 over HTTP, greeter over gRPC) and a client
# (meshclient, service "frontend"), each behind its own outrigger sidecar
# configured over xDS from Consul. Traffic flows through the sidecars over
# mTLS; the demo then rolls a canary with service-splitter writes (100/0 ->
# 50/50 -> 0/100) and shows the traffic follow, writes a deny intention and
# shows the 403s, deletes it, and stays up until Ctrl-C.
#
# Environment:
#   DEMO_ONESHOT=1        exit right after the canary steps (CI, tests); the exit status says whether they held
#   DEMO_START_TIMEOUT=N  seconds to wait for each process to come up (default 60)
#
# Everything listens on 127.0.0.1 on the fixed ports below; the script refuses
# to start when any is taken. Consul is built once (~5 min) by
# scripts/install-consul.sh and cached in ~/.cache/outrigger.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

readonly HOST=127.0.0.1
readonly CONSUL_HTTP=18500
readonly XDS_PORT=18000 CP_HTTP=19000
readonly ENTRIES=examples/mesh/consul
readonly DRAIN_SECONDS=2
readonly START_TIMEOUT=${DEMO_START_TIMEOUT:-60}
ONESHOT=${DEMO_ONESHOT:-0}

# Sidecars: proxy ID, admin port, public port.
readonly SIDECARS=(
	"payments-1-sidecar-proxy 19101 21101"
	"payments-2-sidecar-proxy 19102 21102"
	"greeter-1-sidecar-proxy 19103 21103"
	"frontend-1-sidecar-proxy 19100 21000"
)

PIDS=()  # every process this script started, in start order
NAMES=() # their names, same index
LOGDIR=""

# shellcheck source=scripts/lib/demo-common.sh
source "$ROOT/scripts/lib/demo-common.sh"

ready_200() { [[ $(http_status "$HOST" "$1" "$2") == 200 ]]; }

# cleanup stops everything in reverse start order: sidecars drain while the
# apps still answer, the control plane and Consul go last.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local i
	if ((${#PIDS[@]} > 0)); then
		log "stopping ${#PIDS[@]} processes"
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
			stop_process "${NAMES[i]}" "${PIDS[i]}" $((DRAIN_SECONDS + 8))
		done
		log "all stopped"
	fi
	[[ -z $LOGDIR ]] || log "logs kept in $LOGDIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- preflight -------------------------------------------------------------

[[ $START_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "DEMO_START_TIMEOUT must be a positive number of seconds, got '$START_TIMEOUT'"
command -v go >/dev/null || die "go is not on PATH"
ports=(18500 18502 18503 18300 18301 18302 18600 "$XDS_PORT" "$CP_HTTP" 9101 9102 9103 9191 9192)
for s in "${SIDECARS[@]}"; do
	read -r _ admin public <<<"$s"
	ports+=("$admin" "$public")
done
for port in "${ports[@]}"; do
	if port_open "$HOST" "$port"; then
		die "port $HOST:$port is already in use; stop whatever holds it (another demo?) and retry"
	fi
done

# --- build -----------------------------------------------------------------

log "installing Consul v1.16.3 if missing (first time: ~5 minutes, then cached)"
CONSUL=$(./scripts/install-consul.sh | tail -n 1)
[[ -x $CONSUL ]] || die "install-consul.sh did not give a consul binary"

log "building bin/outrigger and bin/outrigger-cp (make build) and the example apps"
make --no-print-directory build
go build -o bin/ ./examples/static/httpapp ./examples/static/grpcapp ./examples/mesh/meshclient

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/outrigger-demo.XXXXXX")
log "logs go to $LOGDIR"
export CONSUL_HTTP_ADDR=$HOST:$CONSUL_HTTP

# --- Consul ----------------------------------------------------------------

start consul "$CONSUL" agent -dev -bind "$HOST" -client "$HOST" -node demo \
	-http-port "$CONSUL_HTTP" -grpc-port 18502 -grpc-tls-port 18503 -server-port 18300 \
	-serf-lan-port 18301 -serf-wan-port 18302 -dns-port 18600
consul_pid=${PIDS[-1]}
consul_leader() { "$CONSUL" kv put outrigger-demo/up yes >/dev/null 2>&1; }
wait_until consul "$consul_pid" "an elected leader" consul_leader
log "Consul is up: http://$CONSUL_HTTP_ADDR/ui"

for f in proxy-defaults greeter-defaults payments-resolver payments-splitter-100-0; do
	"$CONSUL" config write "$ENTRIES/$f.hcl" >/dev/null || die "consul config write $f.hcl failed"
done
for f in payments-1 payments-2 greeter-1 frontend-1; do
	"$CONSUL" services register "$ENTRIES/$f.hcl" >/dev/null || die "consul services register $f.hcl failed"
done
log "registered payments (v1, v2), greeter and frontend with their sidecars; payments split 100/0"

# --- control plane ---------------------------------------------------------

start outrigger-cp bin/outrigger-cp -consul-addr "$CONSUL_HTTP_ADDR" -xds-addr "$HOST:$XDS_PORT" -http-addr "$HOST:$CP_HTTP" -dashboard-addr "$HOST:19002"
wait_until outrigger-cp "${PIDS[-1]}" "200 from /readyz" ready_200 "$CP_HTTP" /readyz
log "outrigger-cp is serving xDS on $HOST:$XDS_PORT; its dashboard: http://$HOST:19002/"

# --- apps and sidecars -----------------------------------------------------

start payments-v1 bin/httpapp -addr "$HOST:9101" -name payments-v1
start payments-v2 bin/httpapp -addr "$HOST:9102" -name payments-v2
start greeter bin/grpcapp -addr "$HOST:9103" -name greeter-1

for s in "${SIDECARS[@]}"; do
	read -r id admin _ <<<"$s"
	bin/outrigger-cp bootstrap -proxy-id "$id" -xds-addr "$HOST:$XDS_PORT" -admin-addr "$HOST:$admin" \
		-consul-addr "$CONSUL_HTTP_ADDR" >"$LOGDIR/$id.yaml" || die "outrigger-cp bootstrap -proxy-id $id failed"
	start "$id" bin/outrigger -c "$LOGDIR/$id.yaml" --log-level info --drain-time-s "$DRAIN_SECONDS"
done
for s in "${SIDECARS[@]}"; do
	read -r id admin _ <<<"$s"
	pid=""
	for ((i = 0; i < ${#NAMES[@]}; i++)); do [[ ${NAMES[i]} == "$id" ]] && pid=${PIDS[i]}; done
	wait_until "$id" "$pid" "200 from its admin /ready" ready_200 "$admin" /ready
done
log "all four sidecars are ready (configured by outrigger-cp from Consul)"

# --- traffic and the canary --------------------------------------------------

client=(bin/meshclient -http "$HOST:9191" -grpc "$HOST:9192" -window 100 -tolerance 15 -timeout 30s)
rc=0
step() { # step SPLITTER_FILE EXPECT
	local t0
	if [[ -n $1 ]]; then
		"$CONSUL" config write "$ENTRIES/$1.hcl" >/dev/null || die "consul config write $1.hcl failed"
		log "wrote $1 to Consul"
	fi
	t0=$(now_us)
	if "${client[@]}" -expect "$2"; then
		log "traffic matched $2 $((($(now_us) - t0) / 1000)) ms after ${3:-the write}"
	else
		log "traffic did not reach $2 (see above)"
		rc=1
	fi
}
log "frontend -> its sidecar -> payments (HTTP) and greeter (gRPC)"
# Consul marks a sidecar passing on its next TCP check (every second here),
# so the very first requests may meet no healthy upstream yet.
step "" payments-v1=100 "the sidecars became ready (Consul health-checks them every second)"
step payments-splitter-50-50 payments-v1=50,payments-v2=50
step payments-splitter-0-100 payments-v2=100

log "sidecars talk mTLS with Consul Connect CA certificates (SPIFFE IDs); a plaintext caller is refused:"
plaintext_answer() { # plaintext_answer PORT: what an HTTP/1.1 request in the clear gets back
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET / HTTP/1.1\r\nHost: payments\r\n\r\n" >&3 && head -c 64 <&3' _ "$HOST" "$1" 2>/dev/null || true
}
answer=$(plaintext_answer 21101 | head -n 1 | tr -d '\r')
if [[ -n $answer ]]; then
	log "  a plaintext request to payments' public port was answered ($answer): mTLS is NOT enforced"
	rc=1
else
	log "  plaintext request to payments' public port (21101): connection closed without an answer"
fi
log "intentions are enforced by the sidecars: deny frontend -> payments"
step payments-intentions-deny "error: HTTP 403=100"
"$CONSUL" config delete -kind service-intentions -name payments >/dev/null || die "consul config delete service-intentions payments failed"
log "deleted the intention"
step "" payments-v2=100 "the intention was deleted"

if [[ $ONESHOT == 1 ]]; then
	exit "$rc"
fi

cat <<EOF

The mesh is running; everything is on $HOST.
  Consul UI:        http://$CONSUL_HTTP_ADDR/ui
  control plane:    http://$HOST:$CP_HTTP/debug/status   /metrics
  sidecar admins:   http://$HOST:19100/config_dump (frontend)   19101, 19102 (payments v1, v2)   19103 (greeter)
  try a canary:     CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR $CONSUL config write $ENTRIES/payments-splitter-50-50.hcl
  logs:             $LOGDIR

Traffic from frontend, one line a second (Ctrl-C to stop):
EOF
bin/meshclient -http "$HOST:9191" -grpc "$HOST:9192" -window 20 &
PIDS+=("$!")
NAMES+=(meshclient)
rc=0
wait -n "${PIDS[@]}" || rc=$?
for i in "${!PIDS[@]}"; do
	if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
		show_log "${NAMES[i]}"
		die "${NAMES[i]} exited on its own (status $rc)"
	fi
done
