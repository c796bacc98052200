#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and through wait_until look unreachable
# The shop on the mesh, scripted: a Consul server and a Consul client
# agent (the one everything talks to), outrigger-cp with its
# dashboard, Redis, NATS JetStream, the shop's services (users, orders,
# payments v1 and v2, notifications, analytics; examples/shop) each behind
# its own outrigger sidecar, an outrigger at the edge as Consul's ingress
# gateway "shop-edge" (JWT and a local rate limit from its entry's Meta), and
# examples/shop/loadgen sending orders through the edge at a steady rate,
# one summary line a second (rate, errors, p99, canary share). Then a story:
#
#   1. the edge: no token is 401, a burst over the rate limit meets 429s
#   2. canary payments v2 at 10 %, then 50 % (service-splitter writes)
#   3. payments v1 killed (SIGKILL) and started again; the resolver's
#      failover (v1 <-> v2) sends v1's share to v2 meanwhile
#   4. the Consul server stopped: the mesh keeps serving from its last
#      configuration; started again: outrigger-cp resyncs, and a canary
#      write (v2 at 100 %) made after the restart reaches the traffic
#   5. HTTP/3 at a second edge gateway ("shop-edge-h3": TLS from
#      certificate files made here, host shop.demo, QUIC on the same port)
#
# each step logged with what the traffic did, and a ledger check (every paid
# order charged exactly once, every charge for a paid order; SQLite files
# read with sqlite3); then it keeps running until Ctrl-C. On Ctrl-C (or
# SIGTERM) the script stops what it started in reverse order, each with
# SIGTERM and a grace period; from a terminal, Ctrl-C also reaches every
# process in the foreground group at once, and they stop on their own.
#
# Usage:
#   scripts/demo-shop.sh                    # the story, then traffic until Ctrl-C
#   DEMO_ONESHOT=1 scripts/demo-shop.sh     # the story only; exit 0 when every step held
#
# Environment:
#   DEMO_ONESHOT=1        exit after the story (CI); the exit status says whether every step held
#   DEMO_START_TIMEOUT=N  seconds to wait for each process to come up (default 60)
#   DEMO_RATE=N           orders per second from loadgen (default 20)
#
# Needs: go, redis-server (Debian's; scripts/install-test-deps.sh installs
# it), curl, openssl, sqlite3, and Consul v1.16.3 (built once, ~5 min, by
# scripts/install-consul.sh and cached in ~/.cache/outrigger). Builds
# bin/outrigger and bin/outrigger-cp (make build) and the shop
# (go build ./examples/shop/...). Everything listens on 127.0.0.1 on the
# fixed ports below, none of them demo.sh's (the shop's app, sidecar and
# upstream ports are those of examples/shop/consul/*.hcl); the script
# refuses to start when any TCP port is taken (the HTTP/3 gateway's UDP
# port is not probed). Logs and data (SQLite files, Consul's and NATS's
# directories, the key set, token and certificate made at start) stay in a
# temporary directory named at the start and the end.
#
# Files: examples/shop/consul/demo-gateway.hcl (the edge's ingress-gateway
# entry: JWT, rate limit), demo-gateway-service.hcl (its registration),
# demo-payments-resolver.hcl (payments-resolver.hcl plus failover between
# the versions; used instead of it); generated at start, in the log
# directory: the jwt-provider entry (scripts/lib/jwtgen's key set, inline)
# and the HTTP/3 gateway's entry and registration (they name the
# certificate files). scripts/lib/h3get makes the HTTP/3 request.
#
# Consul runs as one server (not -dev: a data directory, so its restart in
# step 4 keeps the config entries, the catalog and the Connect CA) and one
# client agent, where the services are registered and which outrigger-cp
# and the consul CLI talk to, as on a real node. Step 4 restarts the
# server: a restarted client agent would also restart its health checks,
# which begin critical, and take the node's services out of the mesh until
# they pass again (Consul's behaviour, not the mesh's).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

readonly HOST=127.0.0.1
readonly CONSUL_HTTP=18550 CONSUL_SERVER_HTTP=18560
readonly XDS_PORT=18050 CP_HTTP=19050 CP_DASHBOARD=19052
readonly REDIS_PORT=16379 NATS_PORT=14222
readonly EDGE_USERS=18080 EDGE_ORDERS=18081 EDGE_ADMIN=19290
readonly H3_PORT=18443 H3_ADMIN=19291
readonly ENTRIES=examples/shop/consul
readonly DRAIN_SECONDS=2
readonly START_TIMEOUT=${DEMO_START_TIMEOUT:-60}
readonly RATE=${DEMO_RATE:-20}
ONESHOT=${DEMO_ONESHOT:-0}

# Sidecars: proxy ID, admin port, public port (examples/shop/consul/*-1.hcl).
readonly SIDECARS=(
	"users-1-sidecar-proxy 19201 21201"
	"orders-1-sidecar-proxy 19202 21202"
	"payments-1-sidecar-proxy 19203 21203"
	"payments-2-sidecar-proxy 19204 21204"
	"notifications-1-sidecar-proxy 19205 21205"
	"analytics-1-sidecar-proxy 19206 21206"
)

PIDS=()  # every process this script started, in start order
NAMES=() # their names, same index
LOGDIR=""

# shellcheck source=scripts/lib/demo-common.sh
source "$ROOT/scripts/lib/demo-common.sh"

ready_200() { [[ $(http_status "$HOST" "$1" "$2") == 200 ]]; }

# pid_of NAME prints the pid of the process started as NAME.
pid_of() {
	local i
	for ((i = 0; i < ${#NAMES[@]}; i++)); do
		if [[ ${NAMES[i]} == "$1" ]]; then
			printf '%s' "${PIDS[i]}"
			return 0
		fi
	done
	return 1
}

# restart_as NAME CMD... starts CMD as NAME again, in NAME's slot (so the
# cleanup order stays the start order).
restart_as() {
	local name=$1 i
	shift
	"$@" </dev/null >>"$LOGDIR/$name.log" 2>&1 &
	for ((i = 0; i < ${#NAMES[@]}; i++)); do
		[[ ${NAMES[i]} == "$name" ]] && PIDS[i]=$!
	done
	log "started $name again (pid $!)"
}

# cleanup stops everything in reverse start order: loadgen first, then the
# edge and the sidecars drain while the apps still answer, NATS, Redis, the
# control plane and Consul go last.
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
[[ $RATE =~ ^[1-9][0-9]*$ && $RATE -le 200 ]] || die "DEMO_RATE must be a whole number of orders a second, 1..200, got '$RATE'"
for tool in go redis-server curl openssl sqlite3 awk; do
	command -v "$tool" >/dev/null || die "$tool is not on PATH (redis-server: scripts/install-test-deps.sh installs it)"
done
ports=(18550 18552 18553 18650 18361 "$CONSUL_SERVER_HTTP" 18350 18351 18352 "$XDS_PORT" "$CP_HTTP" "$CP_DASHBOARD" "$REDIS_PORT" "$NATS_PORT"
	"$EDGE_USERS" "$EDGE_ORDERS" "$EDGE_ADMIN" "$H3_PORT" "$H3_ADMIN"
	9201 9202 9203 9204 9205 9206 9212 9213 9214 9301 9302)
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

T_BEGIN=$(now_us)
log "installing Consul v1.16.3 if missing (first time: ~5 minutes, then cached)"
CONSUL=$(./scripts/install-consul.sh | tail -n 1)
[[ -x $CONSUL ]] || die "install-consul.sh did not give a consul binary"

log "building bin/outrigger and bin/outrigger-cp (make build) and the shop"
make --no-print-directory build
go build -o bin/ ./examples/shop/users ./examples/shop/orders ./examples/shop/payments \
	./examples/shop/notifications ./examples/shop/analytics ./examples/shop/loadgen ./examples/shop/natsd

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/outrigger-shop-demo.XXXXXX")
log "logs and data go to $LOGDIR"
export CONSUL_HTTP_ADDR=$HOST:$CONSUL_HTTP

# The edge's credentials: a fresh ES256 key pair, its JWKS for the
# jwt-provider entry and a token for loadgen; a self-signed certificate for
# the HTTP/3 gateway.
go run ./scripts/lib/jwtgen -out "$LOGDIR" -issuer https://idp.shop.demo -audience shop -subject loadgen
TOKEN=$(<"$LOGDIR/token")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=shop.demo" -addext "subjectAltName=DNS:shop.demo,IP:$HOST" \
	-keyout "$LOGDIR/edge-key.pem" -out "$LOGDIR/edge-cert.pem" 2>/dev/null ||
	die "openssl could not make the edge's certificate"
go build -o "$LOGDIR/h3get" ./scripts/lib/h3get

# --- Consul ----------------------------------------------------------------

server_args=(agent -server -bootstrap-expect 1 -data-dir "$LOGDIR/consul-server" -node shop-server -ui
	-bind "$HOST" -client "$HOST" -http-port "$CONSUL_SERVER_HTTP" -grpc-port -1 -grpc-tls-port -1 -dns-port -1
	-server-port 18350 -serf-lan-port 18351 -serf-wan-port 18352
	-hcl 'connect { enabled = true }' -hcl 'performance { raft_multiplier = 1 }')
start consul-server "$CONSUL" "${server_args[@]}"
# The client agent starts once the server has a leader: its first sync of
# services and checks would fail otherwise, and be retried only 15-30 s later.
server_leader() { [[ $(curl -sf "http://$HOST:$CONSUL_SERVER_HTTP/v1/status/leader" 2>/dev/null) == *:* ]]; }
wait_until consul-server "$(pid_of consul-server)" "an elected leader" server_leader
start consul-agent "$CONSUL" agent -data-dir "$LOGDIR/consul-agent" -node shop-node -ui \
	-bind "$HOST" -client "$HOST" -http-port "$CONSUL_HTTP" -grpc-port 18552 -grpc-tls-port 18553 -dns-port 18650 \
	-serf-lan-port 18361 -retry-join "$HOST:18351" -retry-interval 1s
consul_leader() { "$CONSUL" kv put outrigger-demo/up yes >/dev/null 2>&1; }
wait_until consul-agent "$(pid_of consul-agent)" "a leader through the client agent" consul_leader
log "Consul is up: http://$CONSUL_HTTP_ADDR/ui (the client agent; the server's API is on :$CONSUL_SERVER_HTTP)"

write_entry() { "$CONSUL" config write "$1" >/dev/null || die "consul config write $1 failed"; }
for f in users orders payments notifications analytics; do
	write_entry "$ENTRIES/$f-defaults.hcl"
done
for f in demo-payments-resolver payments-router payments-splitter-100-0; do
	write_entry "$ENTRIES/$f.hcl"
done
cat >"$LOGDIR/demo-idp.hcl" <<EOF
# Written by scripts/demo-shop.sh: the key set made for this run.
Kind      = "jwt-provider"
Name      = "shop-demo-idp"
Issuer    = "https://idp.shop.demo"
Audiences = ["shop"]
JSONWebKeySet = { Local = { JWKS = "$(base64 -w0 <"$LOGDIR/jwks.json")" } }
EOF
write_entry "$LOGDIR/demo-idp.hcl"
write_entry "$ENTRIES/demo-gateway.hcl"
cat >"$LOGDIR/demo-gateway-h3.hcl" <<EOF
# Written by scripts/demo-shop.sh: a second edge, TLS with this run's
# certificate files, HTTP/1.1 and h2 over TCP and HTTP/3 over UDP on one port.
Kind = "ingress-gateway"
Name = "shop-edge-h3"
Meta = {
  "outrigger.io/http3"             = "true"
  "outrigger.io/tls-cert-file"     = "$LOGDIR/edge-cert.pem"
  "outrigger.io/tls-key-file"      = "$LOGDIR/edge-key.pem"
  "outrigger.io/jwt-providers"     = "shop-demo-idp"
  "outrigger.io/rate-limit"        = "50/s"
}
TLS = { Enabled = true }
Listeners = [
  { Port = $H3_PORT, Protocol = "http", Services = [{ Name = "users", Hosts = ["shop.demo"] }] },
]
EOF
write_entry "$LOGDIR/demo-gateway-h3.hcl"
cat >"$LOGDIR/demo-gateway-h3-service.hcl" <<EOF
service {
  kind    = "ingress-gateway"
  name    = "shop-edge-h3"
  id      = "shop-edge-h3-1"
  address = "$HOST"
  port    = $H3_PORT
  meta    = { outrigger_admin = "$HOST:$H3_ADMIN" }
}
EOF
for f in "$ENTRIES"/{users,orders,payments,notifications,analytics}-1.hcl "$ENTRIES/payments-2.hcl" \
	"$ENTRIES/demo-gateway-service.hcl" "$LOGDIR/demo-gateway-h3-service.hcl"; do
	"$CONSUL" services register "$f" >/dev/null || die "consul services register $f failed"
done
log "registered the shop (payments v1 and v2, split 100/0), its sidecars, the jwt-provider and two edge gateways"

# --- control plane ---------------------------------------------------------

start outrigger-cp bin/outrigger-cp -consul-addr "$CONSUL_HTTP_ADDR" -xds-addr "$HOST:$XDS_PORT" \
	-http-addr "$HOST:$CP_HTTP" -dashboard-addr "$HOST:$CP_DASHBOARD"
wait_until outrigger-cp "$(pid_of outrigger-cp)" "200 from /readyz" ready_200 "$CP_HTTP" /readyz
wait_until outrigger-cp "$(pid_of outrigger-cp)" "200 from its dashboard" ready_200 "$CP_DASHBOARD" /
log "outrigger-cp is serving xDS on $HOST:$XDS_PORT; its dashboard: http://$HOST:$CP_DASHBOARD/"

# --- Redis, NATS, the shop ---------------------------------------------------

start redis redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no
start nats bin/natsd -addr "$HOST:$NATS_PORT" -store-dir "$LOGDIR/nats"
redis_up() { [[ $( (exec 3<>"/dev/tcp/$HOST/$REDIS_PORT" && printf 'PING\r\n' >&3 && head -c 5 <&3) 2>/dev/null) == +PONG ]]; }
wait_until redis "$(pid_of redis)" "a PONG" redis_up
wait_until nats "$(pid_of nats)" "an open port" port_open "$HOST" "$NATS_PORT"

NATS_URL=nats://$HOST:$NATS_PORT
payments_v1=(bin/payments -db "$LOGDIR/payments.db" -version v1 -addr "$HOST:9203" -admin-addr "$HOST:9213")
start users bin/users -db "$LOGDIR/users.db" -redis "$HOST:$REDIS_PORT" -addr "$HOST:9201"
start orders bin/orders -db "$LOGDIR/orders.db" -nats-url "$NATS_URL" -addr "$HOST:9202" -admin-addr "$HOST:9212" \
	-payments-addr "$HOST:9302" -users-url "http://$HOST:9301"
start payments-v1 "${payments_v1[@]}"
start payments-v2 bin/payments -db "$LOGDIR/payments.db" -version v2 -addr "$HOST:9204" -admin-addr "$HOST:9214"
start notifications bin/notifications -db "$LOGDIR/notifications.db" -nats-url "$NATS_URL" -addr "$HOST:9205"
start analytics bin/analytics -nats-url "$NATS_URL" -addr "$HOST:9206"
for a in users:9201 orders:9212 payments-v1:9213 payments-v2:9214 notifications:9205 analytics:9206; do
	wait_until "${a%:*}" "$(pid_of "${a%:*}")" "200 from /healthz" ready_200 "${a#*:}" /healthz
done
log "the shop's services are up (SQLite files, Redis on :$REDIS_PORT, NATS JetStream on :$NATS_PORT)"

# --- sidecars and the edge -----------------------------------------------------

proxies=("${SIDECARS[@]}" "shop-edge-1 $EDGE_ADMIN -" "shop-edge-h3-1 $H3_ADMIN -")
for s in "${proxies[@]}"; do
	read -r id admin _ <<<"$s"
	bin/outrigger-cp bootstrap -proxy-id "$id" -xds-addr "$HOST:$XDS_PORT" -admin-addr "$HOST:$admin" \
		-consul-addr "$CONSUL_HTTP_ADDR" >"$LOGDIR/$id.yaml" || die "outrigger-cp bootstrap -proxy-id $id failed"
	start "$id" bin/outrigger -c "$LOGDIR/$id.yaml" --log-level info --drain-time-s "$DRAIN_SECONDS"
done
for s in "${proxies[@]}"; do
	read -r id admin _ <<<"$s"
	wait_until "$id" "$(pid_of "$id")" "200 from its admin /ready" ready_200 "$admin" /ready
done
edge_answers() { [[ $(http_status "$HOST" "$EDGE_USERS" /users/none) == 401 ]]; }
wait_until shop-edge-1 "$(pid_of shop-edge-1)" "401 from its users listener" edge_answers
# Consul's catalog learns that a check passes when the client agent syncs
# it (at once, normally). The story starts when all pass.
all_passing() {
	local states
	states=$(curl -sf "http://$CONSUL_HTTP_ADDR/v1/health/state/any" | grep -o '"Status":"[a-z]*"' | sort -u) || return 1
	[[ $states == '"Status":"passing"' ]]
}
wait_until consul-agent "$(pid_of consul-agent)" "every check passing in the catalog" all_passing
log "six sidecars and two edge gateways are ready and every check passes, $((($(now_us) - T_BEGIN) / 1000000)) s after the start"

# --- traffic -------------------------------------------------------------------

bin/loadgen -users-url "http://$HOST:$EDGE_USERS" -orders-addr "$HOST:$EDGE_ORDERS" -token "$TOKEN" \
	-rate "$RATE" -retries 3 -timeout 5s </dev/null >"$LOGDIR/loadgen.log" 2>"$LOGDIR/loadgen-stderr.log" &
PIDS+=("$!")
NAMES+=(loadgen)
LOADGEN=$!
log "started loadgen (pid $LOADGEN): $RATE orders a second through the edge, up to 3 retries with the same request id"
# Its summary lines, as they come (the tail ends with loadgen).
tail -n +1 -F --pid="$LOADGEN" "$LOGDIR/loadgen.log" 2>/dev/null | sed -u 's/^/      traffic | /' &

# lines prints how many summary lines loadgen has written.
lines() { [[ -f $LOGDIR/loadgen.log ]] && wc -l <"$LOGDIR/loadgen.log" || echo 0; }

# wait_lines N: waits for N more summary lines (seconds of traffic).
wait_lines() {
	local want=$(($(lines) + $1)) deadline=$(($(now_us) + ($1 + 15) * 1000000))
	while (($(lines) < want)); do
		kill -0 "$LOADGEN" 2>/dev/null || {
			show_log loadgen-stderr
			die "loadgen exited"
		}
		(($(now_us) < deadline)) || die "loadgen wrote no summary line for 15 s"
		sleep 0.2
	done
}

# traffic FROM TO sums summary lines FROM+1..TO: it sets T_ORDERS (sent),
# T_ERRORS (failed after retries), T_RETRIES (orders sent again), T_V2 (payments v2's share of the paid
# orders, in %), T_P99 (the worst second's p99, ms) and T_TEXT.
traffic() {
	read -r T_ORDERS T_ERRORS T_RETRIES T_V2 T_P99 < <(sed -n "$(($1 + 1)),$2p" "$LOGDIR/loadgen.log" | awk '
		function ms(d) {
			if (d ~ /ms$/) return d + 0
			if (d ~ /(µs|us)$/) return (d + 0) / 1000
			if (d ~ /ns$/) return (d + 0) / 1e6
			if (d ~ /m[0-9.]+s$/) { split(d, p, "m"); return p[1] * 60000 + p[2] * 1000 }
			return (d + 0) * 1000
		}
		{
			r = 0; e = 0; v2 = 0
			for (i = 1; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == "rate") r = kv[2] + 0
				else if (kv[1] == "errors") e = kv[2] + 0
				else if (kv[1] == "retries") retries += kv[2]
				else if (kv[1] == "v2") v2 = kv[2] + 0
				else if (kv[1] == "p99" && ms(kv[2]) > p99) p99 = ms(kv[2])
			}
			orders += r; errors += e; paid += r - e; v2paid += (r - e) * v2 / 100
		}
		END { v = 0; if (paid > 0) v = 100 * v2paid / paid; printf "%d %d %d %.0f %.1f\n", orders, errors, retries, v, p99 }')
	T_TEXT="$T_ORDERS orders in $(($2 - $1)) s, $T_ERRORS failed ($T_RETRIES retried), payments v2 ${T_V2} %, p99 up to ${T_P99} ms"
}

FAILED=()
held() { log "  held: $*"; }
broke() {
	log "  DID NOT HOLD: $*"
	FAILED+=("$*")
}

# measure N: waits for N summary lines and sums them (traffic).
measure() {
	local from
	from=$(lines)
	wait_lines "$1"
	traffic "$from" $((from + $1))
}

# tolerance PERCENT N prints how many points a share of N orders may stray
# from PERCENT by chance: four standard deviations of the binomial, at
# least 3 (a false alarm about once in 16,000 checks).
tolerance() { awk -v p="$1" -v n="$2" 'BEGIN { t = n > 0 ? 400 * sqrt(p / 100 * (1 - p / 100) / n) : 100; t = int(t + 0.999); print (t < 3 ? 3 : t) }'; }

# canary STEP_FILE V2_PERCENT: writes the splitter, lets 2 s pass for the
# change to reach the sidecars, then checks 10 s of traffic: no failure and
# v2's share within tolerance of the weight.
canary() {
	local t0
	t0=$(now_us)
	write_entry "$ENTRIES/$1.hcl"
	log "wrote $1 to Consul"
	wait_lines 2
	measure 10
	log "  traffic: $T_TEXT"
	local tol
	tol=$(tolerance "$2" $((T_ORDERS - T_ERRORS)))
	if ((T_ERRORS == 0 && T_V2 >= $2 - tol && T_V2 <= $2 + tol)); then
		held "v2 took ${T_V2} % of the orders (weight $2 % +- $tol by chance), none failed"
	else
		broke "canary at $2 %: $T_TEXT"
	fi
	log "  ($((($(now_us) - t0) / 1000000)) s)"
}

# --- the story -------------------------------------------------------------------

log "waiting for the first orders through the edge"
wait_lines 3
measure 5
log "steady state: $T_TEXT"
((T_ORDERS > 0 && T_ERRORS == 0)) || broke "steady state: $T_TEXT"

log "step 1: the edge enforces JWT and the rate limit (docs/gateway.md)"
code=$(http_status "$HOST" "$EDGE_USERS" /users/none)
if [[ $code == 401 ]]; then held "a request without a token: $code"; else broke "a request without a token got '$code', not 401"; fi
mapfile -t urls < <(printf -- "-o\n/dev/null\nhttp://$HOST:$EDGE_USERS/users/burst-%d\n" {1..150})
burst=$(curl -s -w '%{http_code}\n' -H "Authorization: Bearer $TOKEN" "${urls[@]}" | sort | uniq -c | awk '{printf "%s%s x %s", sep, $2, $1; sep=", "}')
log "  150 requests at once with a token: $burst"
if [[ $burst == *"429 x"* && $burst == *"404 x"* ]]; then
	held "over 50 a second the edge answers 429; under it users answers (404: no such user)"
else
	broke "rate limit: 150 requests at once gave $burst"
fi

log "step 2: canary payments v2 at 10 %, then 50 %"
canary payments-splitter-90-10 10
canary payments-splitter-50-50 50

log "step 3: payments v1 killed (SIGKILL) for 5 s, then started again"
kill -KILL "$(pid_of payments-v1)"
wait "$(pid_of payments-v1)" 2>/dev/null || true
t0=$(now_us)
log "killed payments-v1; its sidecar stays up, Consul's check of it fails within ~1 s"
measure 5
log "  traffic while v1 was down: $T_TEXT"
if ((T_ERRORS == 0)); then
	held "no order failed: the resolver's failover sent v1's share to v2; in the second before Consul saw v1 gone, orders' passive health check ejected v1 on its first failure and the router's retry went to the failover (orders-defaults.hcl)"
else
	broke "payments v1 down: $T_TEXT"
fi
restart_as payments-v1 "${payments_v1[@]}"
back_us=$(now_us)
wait_until payments-v1 "$(pid_of payments-v1)" "200 from /healthz" ready_200 9213 /healthz
back=$(lines)
deadline=$(($(now_us) + 20 * 1000000))
until traffic "$back" "$(lines)" && ((T_ORDERS > 0 && T_V2 < 90)); do
	(($(now_us) < deadline)) || break
	sleep 0.5
done
log "  v1 took orders again $((($(now_us) - back_us) / 1000)) ms after it was started again"
measure 5
log "  traffic after the restart: $T_TEXT"
tol=$(tolerance 50 $((T_ORDERS - T_ERRORS)))
if ((T_ERRORS == 0 && T_V2 >= 50 - tol && T_V2 <= 50 + tol)); then
	held "payments v1 is back in the 50/50 split"
else
	broke "after payments v1 came back: $T_TEXT"
fi

log "step 4: the Consul server stopped for 10 s, then started again on the same data"
stop_process consul-server "$(pid_of consul-server)" 10
log "the Consul server is down: no leader, every query outrigger-cp makes fails"
measure 10
log "  traffic without Consul: $T_TEXT"
if ((T_ERRORS == 0 && T_ORDERS > 0)); then
	held "the mesh served on from its last configuration"
else
	broke "Consul down: $T_TEXT"
fi
t0=$(now_us)
restart_as consul-server "$CONSUL" "${server_args[@]}"
wait_until consul-server "$(pid_of consul-server)" "an elected leader after the restart" consul_leader
log "the Consul server is back with a leader after $((($(now_us) - t0) / 1000)) ms"
measure 5
log "  traffic while outrigger-cp resyncs: $T_TEXT"
if ((T_ERRORS == 0)); then
	held "no order failed while outrigger-cp followed Consul again"
else
	broke "after Consul came back: $T_TEXT"
fi
t0=$(now_us)
write_entry "$ENTRIES/payments-splitter-0-100.hcl"
log "wrote payments-splitter-0-100 to the restarted Consul"
mark=$(lines)
deadline=$(($(now_us) + 30 * 1000000))
until (($(lines) >= mark + 1)) && traffic $(($(lines) - 1)) "$(lines)" && ((T_ORDERS > 0 && T_V2 == 100)); do
	if (($(now_us) >= deadline)); then
		break
	fi
	sleep 0.2
done
if ((T_V2 == 100)); then
	held "outrigger-cp resynced: a whole second of orders all went to v2 $((($(now_us) - t0) / 1000)) ms after the write"
else
	broke "the write after Consul's restart did not reach the traffic within 30 s ($T_TEXT)"
fi

log "step 5: HTTP/3 at the second edge (shop-edge-h3, UDP $H3_PORT, certificate from files made at start)"
if out=$("$LOGDIR/h3get" -ca "$LOGDIR/edge-cert.pem" -token "$TOKEN" -host shop.demo "https://$HOST:$H3_PORT/users/h3-check" 2>&1); then
	log "  $out"
	if [[ $out == *"HTTP/3.0 404"* ]]; then
		held "users answered over HTTP/3 through the edge"
	else
		broke "HTTP/3: $out"
	fi
else
	broke "HTTP/3: $out"
fi
alt=$(curl -s -o /dev/null -D - --cacert "$LOGDIR/edge-cert.pem" -H "Authorization: Bearer $TOKEN" \
	--resolve "shop.demo:$H3_PORT:$HOST" "https://shop.demo:$H3_PORT/users/h3-check" | tr -d '\r' | awk -F': ' 'tolower($1) == "alt-svc" {print $2}')
log "  the same over TCP (h2) advertises alt-svc: ${alt:-none}"

log "ledger: orders (orders.db) against charges (payments.db), leaving out the last 5 s (in flight)"
ledger=$(sqlite3 -readonly "$LOGDIR/orders.db" "ATTACH '$LOGDIR/payments.db' AS p;
	SELECT (SELECT count(*) FROM orders WHERE status = 'paid'),
	(SELECT count(*) FROM p.charges),
	(SELECT count(*) FROM orders WHERE status <> 'paid'),
	(SELECT count(*) FROM orders o WHERE o.status = 'paid' AND o.created_at < strftime('%s','now') * 1000 - 5000
		AND NOT EXISTS (SELECT 1 FROM p.charges c WHERE c.order_id = o.id)),
	(SELECT count(*) FROM p.charges c WHERE c.created_at < strftime('%s','now') * 1000 - 5000
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = c.order_id AND o.status = 'paid'));" 2>&1) || broke "ledger: sqlite3: $ledger"
IFS='|' read -r paid charges unpaid nocharge orphan <<<"$ledger"
log "  $paid paid orders, $charges charges, $unpaid orders not paid (failed cleanly); older than 5 s: $nocharge paid without a charge, $orphan charges without a paid order"
if [[ $nocharge == 0 && $orphan == 0 ]]; then
	held "no order lost, none charged twice (one charge per idempotency key)"
else
	broke "ledger: $nocharge paid orders without a charge, $orphan charges without a paid order"
fi
sent=$(curl -s "http://$HOST:9205/notifications?limit=1" | head -c 300)
log "notifications (the other consumer), the first it sent: $sent..."
stats=$(curl -s "http://$HOST:9206/stats" | head -c 300)
log "analytics (a JetStream consumer of order.created): $stats..."
log "story over after $((($(now_us) - T_BEGIN) / 1000000)) s"
if ((${#FAILED[@]} > 0)); then
	log "${#FAILED[@]} step(s) did not hold:"
	for f in "${FAILED[@]}"; do log "  - $f"; done
fi

if [[ $ONESHOT == 1 ]]; then
	((${#FAILED[@]} == 0)) && log "every step held"
	exit $((${#FAILED[@]} > 0))
fi

cat <<EOF

The shop is running on the mesh; everything is on $HOST.
  dashboard:        http://$HOST:$CP_DASHBOARD/
  Consul UI:        http://$CONSUL_HTTP_ADDR/ui
  control plane:    http://$HOST:$CP_HTTP/debug/status   /metrics
  the edge:         curl -H "Authorization: Bearer \$(cat $LOGDIR/token)" http://$HOST:$EDGE_USERS/users/<id>
                    (orders: gRPC on $HOST:$EDGE_ORDERS; HTTP/3 and h2 over TLS: https://shop.demo:$H3_PORT,
                    its certificate $LOGDIR/edge-cert.pem; curl --resolve shop.demo:$H3_PORT:$HOST)
  notifications:    curl http://$HOST:9205/notifications?limit=3
  analytics:        curl http://$HOST:9206/stats
  try a canary:     CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR $CONSUL config write $ENTRIES/payments-splitter-50-50.hcl
  logs:             $LOGDIR

Traffic goes on, one line a second (Ctrl-C to stop).
EOF
rc=0
wait -n "${PIDS[@]}" || rc=$?
for i in "${!PIDS[@]}"; do
	if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
		show_log "${NAMES[i]}"
		die "${NAMES[i]} exited on its own (status $rc)"
	fi
done
