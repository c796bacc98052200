# Shell helpers shared by the demos (sourced, not run). They expect the
# caller to define PIDS, NAMES (arrays), LOGDIR and START_TIMEOUT.
# shellcheck shell=bash

log() { printf '[demo] %s\n' "$*"; }
die() {
	printf '[demo] error: %s\n' "$*" >&2
	exit 1
}

# now_us prints the wall clock in microseconds (bash 5's EPOCHREALTIME).
now_us() { printf '%s' "${EPOCHREALTIME//[.,]/}"; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# http_status HOST PORT PATH prints the status code of a GET, or nothing.
# Plain bash, so the demo does not depend on curl.
http_status() {
	(
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf 'GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: outrigger-demo\r\nConnection: close\r\n\r\n' "$3" "$1" "$2" >&3
		IFS=' ' read -r -t 2 _ code _ <&3 || exit 1
		printf '%s' "$code"
	) 2>/dev/null || true
}

# show_log NAME prints the tail of a process's log, for a failure message.
show_log() {
	local f="$LOGDIR/$1.log"
	[[ -s $f ]] || return 0
	printf '[demo] last lines of %s:\n' "$f" >&2
	tail -n 20 "$f" | sed 's/^/    /' >&2
}

# start NAME CMD... runs CMD in the background with its output in $LOGDIR/NAME.log.
start() {
	local name=$1
	shift
	"$@" </dev/null >"$LOGDIR/$name.log" 2>&1 &
	PIDS+=("$!")
	NAMES+=("$name")
	log "started $name (pid $!): $*"
}

# wait_until NAME PID DESCRIPTION CONDITION...: polls CONDITION until it holds,
# failing fast if the process died and after START_TIMEOUT seconds.
wait_until() {
	local name=$1 pid=$2 what=$3
	shift 3
	local deadline=$(($(now_us) + START_TIMEOUT * 1000000))
	until "$@"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			local rc=0
			wait "$pid" 2>/dev/null || rc=$?
			show_log "$name"
			die "$name exited (status $rc) before $what"
		fi
		if (($(now_us) >= deadline)); then
			show_log "$name"
			die "$name: no $what within ${START_TIMEOUT}s"
		fi
		sleep 0.1
	done
}

# stop_process NAME PID GRACE sends SIGTERM, waits up to GRACE seconds, then SIGKILLs.
stop_process() {
	local name=$1 pid=$2 grace=$3
	if kill -TERM "$pid" 2>/dev/null; then
		local deadline=$(($(now_us) + grace * 1000000))
		while kill -0 "$pid" 2>/dev/null; do
			if (($(now_us) >= deadline)); then
				log "$name did not stop within ${grace}s; killing it"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	fi
	wait "$pid" 2>/dev/null || true
}

