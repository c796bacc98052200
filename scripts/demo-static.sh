#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and through wait_until look unreachable
# The static demo behind `make demo-static` (no control plane): outrigger with examples/static/bootstrap.yaml
# in front of two httpapp instances and one grpcapp, traffic sent through it by
# democlient, then everything left running until Ctrl-C.
#
# Environment:
#   DEMO_ONESHOT=1       exit right after the traffic (CI, tests); the exit status is democlient's
#   OUTRIGGER=PATH       use this proxy binary instead of building bin/outrigger with `make build`
#   DEMO_START_TIMEOUT=N seconds to wait for the apps and the proxy to come up (default 30)
#
# The ports are the ones bootstrap.yaml names; the script refuses to start when
# any of them is taken.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

readonly BOOTSTRAP=examples/static/bootstrap.yaml
readonly HOST=127.0.0.1
readonly ADMIN_PORT=9901 PROXY_PORT=10000
readonly HTTPAPP_A_PORT=8081 HTTPAPP_B_PORT=8083 GRPCAPP_PORT=8082
readonly DRAIN_SECONDS=5
readonly START_TIMEOUT=${DEMO_START_TIMEOUT:-30}
ONESHOT=${DEMO_ONESHOT:-0}
OUTRIGGER=${OUTRIGGER:-}

PIDS=()  # every process this script started, in start order
NAMES=() # their names, same index
LOGDIR=""

# shellcheck source=scripts/lib/demo-common.sh
source "$ROOT/scripts/lib/demo-common.sh"

admin_ready() { [[ $(http_status "$HOST" "$ADMIN_PORT" /ready) == 200 ]]; }

# cleanup stops the proxy first (it drains while the apps still answer), then
# the apps, and waits for every one of them.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local i
	if ((${#PIDS[@]} > 0)); then
		log "stopping ${#PIDS[@]} processes"
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
			if [[ ${NAMES[i]} == outrigger ]]; then
				stop_process "${NAMES[i]}" "${PIDS[i]}" $((DRAIN_SECONDS + 5))
			fi
		done
		for ((i = 0; i < ${#PIDS[@]}; i++)); do
			kill -TERM "${PIDS[i]}" 2>/dev/null || true
		done
		for ((i = 0; i < ${#PIDS[@]}; i++)); do
			stop_process "${NAMES[i]}" "${PIDS[i]}" 10
		done
		log "all stopped"
	fi
	if [[ -n $LOGDIR ]]; then
		log "logs kept in $LOGDIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- preflight -------------------------------------------------------------

[[ $START_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "DEMO_START_TIMEOUT must be a positive number of seconds, got '$START_TIMEOUT'"
command -v go >/dev/null || die "go is not on PATH"
[[ -f $BOOTSTRAP ]] || die "$BOOTSTRAP not found"

for spec in "$ADMIN_PORT:outrigger admin" "$PROXY_PORT:outrigger listener ingress_http" \
	"$HTTPAPP_A_PORT:httpapp (first instance)" "$HTTPAPP_B_PORT:httpapp (second instance)" \
	"$GRPCAPP_PORT:grpcapp"; do
	port=${spec%%:*}
	if port_open "$HOST" "$port"; then
		die "port $HOST:$port (for ${spec#*:}) is already in use; stop whatever holds it (another demo?) and retry"
	fi
done

# --- build -----------------------------------------------------------------

if [[ -z $OUTRIGGER ]]; then
	log "building bin/outrigger (make build)"
	make --no-print-directory build
	OUTRIGGER=bin/outrigger
fi
[[ -x $OUTRIGGER ]] || die "$OUTRIGGER is not an executable file"

log "building the example apps into bin/"
mkdir -p bin
go build -o bin/ ./examples/static/httpapp ./examples/static/grpcapp ./examples/static/democlient

# --- run -------------------------------------------------------------------

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/outrigger-demo.XXXXXX")
log "logs go to $LOGDIR"

start httpapp-a bin/httpapp -addr "$HOST:$HTTPAPP_A_PORT" -name httpapp
start httpapp-b bin/httpapp -addr "$HOST:$HTTPAPP_B_PORT" -name httpapp
start grpcapp bin/grpcapp -addr "$HOST:$GRPCAPP_PORT" -name grpcapp
wait_until httpapp-a "${PIDS[0]}" "listener on $HOST:$HTTPAPP_A_PORT" port_open "$HOST" "$HTTPAPP_A_PORT"
wait_until httpapp-b "${PIDS[1]}" "listener on $HOST:$HTTPAPP_B_PORT" port_open "$HOST" "$HTTPAPP_B_PORT"
wait_until grpcapp "${PIDS[2]}" "listener on $HOST:$GRPCAPP_PORT" port_open "$HOST" "$GRPCAPP_PORT"

start outrigger "$OUTRIGGER" -c "$BOOTSTRAP" --log-level info --drain-time-s "$DRAIN_SECONDS"
wait_until outrigger "${PIDS[3]}" "200 from http://$HOST:$ADMIN_PORT/ready" admin_ready
log "outrigger is ready"

client_rc=0
bin/democlient -proxy "$HOST:$PROXY_PORT" -admin "$HOST:$ADMIN_PORT" -wait 5s || client_rc=$?

if [[ -s $LOGDIR/outrigger.log ]]; then
	printf '\n[demo] last lines of the proxy output (access log and process log), %s:\n' "$LOGDIR/outrigger.log"
	tail -n 12 "$LOGDIR/outrigger.log" | sed 's/^/    /'
fi

if ((client_rc != 0)); then
	log "democlient saw something unexpected (status $client_rc); see above and the logs in $LOGDIR"
fi
if [[ $ONESHOT == 1 ]]; then
	exit "$client_rc"
fi

cat <<EOF

Outrigger is running in front of the example apps.
  traffic:    http://$HOST:$PROXY_PORT/hello   POST /echo   /status   gRPC grpc.testing.TestService on $HOST:$PROXY_PORT
  admin API:  http://$HOST:$ADMIN_PORT/
    GET  /ready                 200 once listeners serve, 503 while draining
    GET  /stats/prometheus      metrics in Prometheus text format
    GET  /config_dump           the configuration in force
    GET  /clusters              clusters and their endpoints
    POST /logging?level=debug   change the log level
    POST /drain_listeners       stop accepting and drain
    POST /quitquitquit          shut the proxy down
  try:        curl -si http://$HOST:$PROXY_PORT/hello
              bin/democlient            (the traffic above, again)
  logs:       $LOGDIR

Press Ctrl-C to stop.
EOF

# Run until Ctrl-C, or until one of the processes dies on its own.
rc=0
wait -n "${PIDS[@]}" || rc=$?
for i in "${!PIDS[@]}"; do
	if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
		show_log "${NAMES[i]}"
		die "${NAMES[i]} exited on its own (status $rc)"
	fi
done
die "a demo process exited on its own (status $rc)"
