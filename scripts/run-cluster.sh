#!/usr/bin/env bash
# run-cluster.sh — Postback as a local multi-process cluster, the production
# shape on one machine, loopback only (`make run-cluster`):
#
#   3 x nats-server (bin/nats-server, JetStream, one cluster, R3 streams)
#   1 x redis-server (no persistence)
#   postback-gateway, postback-renderer, postback-retry, postback-historian,
#   2 x postback-sender
#
# The delivery history store (read by the gateway, written by the historian
# from the HISTORY stream): when POSTBACK_HISTORY_URL is set in the
# environment (a postgres://… URL), the gateway and the historian get it;
# otherwise both use the embedded SQLite file $CLUSTER_DIR/history/history.db
# (the same POSTBACK_DATA_DIR for the two, so the gateway reads what the
# historian writes; kept across runs like the NATS data). POSTBACK_RETENTION
# passes through (the historian drops whole days past it; default 720h).
#
# Everything lives in $CLUSTER_DIR (default .cluster/, git-ignored): NATS and
# Redis data, one log per process (logs/), the PIDs (pids: name pid binary),
# the addresses (cluster.env, sourceable), the generated secret key, job key,
# NATS passwords (nats-passwords: one user per service, deploy/nats/auth.conf)
# and API token (kept across runs, so a restarted cluster reads its own data). The
# script returns once the gateway's /readyz answers and its gRPC port accepts;
# the processes keep running until `make stop-cluster`, which ends exactly the
# PIDs listed in pids.
#
# Ports are free ones picked at random on 127.0.0.1, or consecutive from
# CLUSTER_BASE_PORT (16 ports: 3 NATS client, 3 cluster, 3 monitoring, Redis,
# gateway gRPC and HTTP, renderer, retry, historian, two senders).
#
# Environment:
#   CLUSTER_DIR             state folder (default <repo>/.cluster)
#   CLUSTER_BASE_PORT       first of 16 consecutive ports (default: random free ports)
#   CLUSTER_STREAM_REPLICAS POSTBACK_STREAM_REPLICAS (default 3)
#   CLUSTER_ALLOW_CIDRS     POSTBACK_ALLOW_CIDRS (default 127.0.0.1/32)
#   CLUSTER_FRESH=1         wipe CLUSTER_DIR first (new data, key and token)
#   CLUSTER_TIMEOUT         seconds to wait for readiness (default 60)
#   POSTBACK_HISTORY_URL    the history store, postgres://… (default: embedded SQLite in $CLUSTER_DIR/history)
#   POSTBACK_RETRY_SCHEDULE, POSTBACK_RETENTION, POSTBACK_LOG_LEVEL, OTEL_* pass through to the services.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CLUSTER_DIR:-$ROOT/.cluster}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
BIN=${CLUSTER_BIN:-$ROOT/bin}
TIMEOUT=${CLUSTER_TIMEOUT:-60}
REPLICAS=${CLUSTER_STREAM_REPLICAS:-3}
ALLOW=${CLUSTER_ALLOW_CIDRS:-127.0.0.1/32}

say() { printf 'run-cluster: %s\n' "$*"; }
die() { printf 'run-cluster: %s\n' "$*" >&2; exit 1; }

for b in nats-server postback-gateway postback-renderer postback-retry postback-historian postback-sender; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run \`make build tools\` (or \`make run-cluster\`)"
done
REDIS_SERVER=$(command -v redis-server || true)
[ -n "$REDIS_SERVER" ] || [ ! -x /usr/bin/redis-server ] || REDIS_SERVER=/usr/bin/redis-server
[ -n "$REDIS_SERVER" ] || die "redis-server is missing: run scripts/ensure-redis.sh"
command -v curl >/dev/null || die "curl is required"

# A cluster already running from this folder?
if [ -s "$DIR/pids" ]; then
	while read -r name pid exe; do
		running=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
		if [ -n "$running" ] && { [ "$running" = "$exe" ] || [ "$running" = "$exe (deleted)" ]; }; then
			die "a cluster is already running from $DIR ($name is PID $pid): \`make stop-cluster\` first"
		fi
	done <"$DIR/pids"
	rm -f "$DIR/pids"
fi
if [ "${CLUSTER_FRESH:-0}" = 1 ]; then
	say "CLUSTER_FRESH=1: wiping $DIR"
	rm -rf "${DIR:?}"/*
fi
mkdir -p "$DIR/logs"

# --- the history store -------------------------------------------------------
# One store for the gateway (reads) and the historian (writes): the given
# PostgreSQL URL, else one embedded SQLite file in a data dir both share.
HISTORY_URL=${POSTBACK_HISTORY_URL:-}
if [ -n "$HISTORY_URL" ]; then
	case $HISTORY_URL in
	postgres://* | postgresql://*) ;;
	*) die "POSTBACK_HISTORY_URL must be a postgres:// URL (or unset for the embedded store)" ;;
	esac
	HISTORY_ENV=(POSTBACK_HISTORY_URL="$HISTORY_URL")
	HISTORY_DESC="PostgreSQL (POSTBACK_HISTORY_URL)"
	HISTORY_STORE=postgres # not the URL: it may carry a password
else
	mkdir -p "$DIR/history"
	HISTORY_ENV=(POSTBACK_DATA_DIR="$DIR/history")
	HISTORY_DESC="embedded SQLite $DIR/history/history.db"
	HISTORY_STORE="sqlite:$DIR/history/history.db"
fi

# --- ports ------------------------------------------------------------------
PICKED=" "
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
	local p
	if [ -n "${CLUSTER_BASE_PORT:-}" ]; then
		p=$((CLUSTER_BASE_PORT + $(wc -w <<<"$PICKED")))
		port_free "$p" || die "port $p (from CLUSTER_BASE_PORT=$CLUSTER_BASE_PORT) is in use"
	else
		for _ in $(seq 200); do
			p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
			case "$PICKED" in *" $p "*) continue ;; esac
			port_free "$p" && break
		done
	fi
	echo "$p"
}
# next_port VAR: pick a port into VAR; PICKED (kept in this shell) avoids repeats.
next_port() { local __p; __p=$(pick_port) || exit 1; PICKED="$PICKED$__p "; printf -v "$1" '%s' "$__p"; }
for i in 1 2 3; do next_port "NATS_PORT_$i"; next_port "NATS_CLUSTER_$i"; next_port "NATS_MON_$i"; done
next_port REDIS_PORT
next_port GATEWAY_GRPC_PORT
next_port GATEWAY_HTTP_PORT
next_port RENDERER_HTTP_PORT
next_port RETRY_HTTP_PORT
next_port HISTORIAN_HTTP_PORT
next_port SENDER_1_HTTP_PORT
next_port SENDER_2_HTTP_PORT

# --- failure: stop what was started, show the logs ----------------------------
started=0
on_fail() {
	local rc=$?
	trap - ERR INT TERM
	if [ "$started" = 1 ]; then
		echo "run-cluster: start failed; last log lines:" >&2
		for f in "$DIR"/logs/*.log; do
			[ -s "$f" ] || continue
			echo "--- $f" >&2
			tail -n 15 "$f" >&2
		done
		CLUSTER_DIR="$DIR" "$ROOT/scripts/stop-cluster.sh" >&2 || true
	fi
	exit $((rc == 0 ? 1 : rc))
}
trap on_fail ERR INT TERM

# start NAME BINARY ARGS...: run in the background with its log, record the PID.
start() {
	local name=$1 exe=$2
	shift 2
	nohup "$exe" "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$name $pid $(readlink -f "$exe")" >>"$DIR/pids"
	started=1
}

alive() { # alive NAME: the recorded process still runs
	local pid
	pid=$(awk -v n="$1" '$1 == n {print $2}' "$DIR/pids")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# wait_for WHAT NAME COMMAND...: poll until COMMAND succeeds, NAME dies, or the timeout.
wait_for() {
	local what=$1 name=$2 deadline=$((SECONDS + TIMEOUT))
	shift 2
	until "$@" >/dev/null 2>&1; do
		alive "$name" || { echo "run-cluster: $name exited while waiting for $what" >&2; return 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "run-cluster: timed out after ${TIMEOUT}s waiting for $what" >&2; return 1; }
		sleep 0.2
	done
}
http_ok() { curl -sf -o /dev/null --max-time 2 "$1"; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- NATS users: one per service, passwords generated once, kept with the data -
# The nodes include deploy/nats/auth.conf (generated from pkg/broker users.go:
# each service's user may publish only what it writes), which reads every
# password from the server's environment.
NATS_USERS="postback gateway renderer sender retry historian"
umask 077
[ -s "$DIR/nats-passwords" ] || for u in $NATS_USERS; do
	printf '%s:%s\n' "$u" "$(head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_')"
done >"$DIR/nats-passwords"
umask 022
nats_password() { awk -F: -v u="$1" '$1 == u {print $2}' "$DIR/nats-passwords"; }
NATS_ENV=() # for the nats-server processes only: a service gets its own password, in its URL
for u in $NATS_USERS; do
	pw=$(nats_password "$u")
	[ -n "$pw" ] || die "$DIR/nats-passwords has no password for $u (CLUSTER_FRESH=1 makes new ones)"
	NATS_ENV+=("POSTBACK_NATS_${u^^}_PASSWORD=$pw")
done
cp "$ROOT/deploy/nats/auth.conf" "$DIR/auth.conf"

# --- NATS: three JetStream nodes, one cluster ---------------------------------
for i in 1 2 3; do
	mkdir -p "$DIR/nats-$i"
	routes=""
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		c="NATS_CLUSTER_$j"
		routes="${routes:+$routes, }nats://127.0.0.1:${!c}"
	done
	p="NATS_PORT_$i" c="NATS_CLUSTER_$i" m="NATS_MON_$i"
	cat >"$DIR/nats-$i.conf" <<EOF
# generated by scripts/run-cluster.sh
server_name: n$i
listen: 127.0.0.1:${!p}
http: 127.0.0.1:${!m}
jetstream {
  store_dir: "$DIR/nats-$i"
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: postback-local
  listen: 127.0.0.1:${!c}
  routes: [$routes]
}
include "auth.conf"
EOF
	(
		for kv in "${NATS_ENV[@]}"; do export "${kv?}"; done
		start "nats-$i" "$BIN/nats-server" -c "$DIR/nats-$i.conf"
	)
	started=1 # (start ran in the subshell)
done
NATS_URL="nats://127.0.0.1:$NATS_PORT_1,nats://127.0.0.1:$NATS_PORT_2,nats://127.0.0.1:$NATS_PORT_3"
# nats_url USER: the server list with USER's credentials on each URL.
nats_url() {
	local pw out="" p
	pw=$(nats_password "$1")
	for p in "$NATS_PORT_1" "$NATS_PORT_2" "$NATS_PORT_3"; do
		out="${out:+$out,}nats://$1:$pw@127.0.0.1:$p"
	done
	echo "$out"
}

# --- Redis ------------------------------------------------------------------
mkdir -p "$DIR/redis"
start redis "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
	--dir "$DIR/redis" --daemonize no --protected-mode yes
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# /healthz of a clustered node answers 200 once JetStream is current with the
# meta leader: the cluster has formed.
for i in 1 2 3; do
	m="NATS_MON_$i"
	wait_for "nats-$i /healthz" "nats-$i" http_ok "http://127.0.0.1:${!m}/healthz"
done
# Then the three nodes must agree on one meta leader, and keep it for two
# seconds: a leader change right after the cluster forms would swallow the
# services' first JetStream API calls.
meta_leader() { curl -sf --max-time 2 "http://127.0.0.1:$1/jsz" | grep -o '"leader": *"[^"]*"' | head -n 1 | sed 's/.*: *"//; s/"$//'; }
stable_since=-1 deadline=$((SECONDS + TIMEOUT))
while :; do
	l1=$(meta_leader "$NATS_MON_1" || true) l2=$(meta_leader "$NATS_MON_2" || true) l3=$(meta_leader "$NATS_MON_3" || true)
	if [ -n "$l1" ] && [ "$l1" = "$l2" ] && [ "$l2" = "$l3" ]; then
		[ "$stable_since" -ge 0 ] || { stable_since=$SECONDS; leader=$l1; }
		[ "$leader" = "$l1" ] || { stable_since=$SECONDS; leader=$l1; }
		[ $((SECONDS - stable_since)) -lt 2 ] || break
	else
		stable_since=-1
	fi
	[ "$SECONDS" -lt "$deadline" ] || { echo "run-cluster: the NATS nodes do not agree on a meta leader ($l1/$l2/$l3)" >&2; false; }
	sleep 0.25
done
wait_for "redis" redis tcp_open "$REDIS_PORT"
say "NATS cluster formed ($NATS_URL, meta leader $leader), Redis on 127.0.0.1:$REDIS_PORT"

# --- secrets: generated once, kept with the data -------------------------------
umask 077
[ -s "$DIR/secret.key" ] || printf 'k1:%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >"$DIR/secret.key"
[ -s "$DIR/job.key" ] || printf 'j1:%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >"$DIR/job.key"
[ -s "$DIR/token" ] || printf '%s\n' "$(head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_')" >"$DIR/token"
umask 022
SECRET_KEY=$(cat "$DIR/secret.key")
JOB_KEY=$(cat "$DIR/job.key")
TOKEN=$(cat "$DIR/token")

# --- the services -------------------------------------------------------------
# service NAME BINARY HTTP_PORT [VAR=VALUE...]: a Postback process with the
# cluster's environment (plus its own variables).
service() {
	local name=$1 exe=$2 http=$3
	shift 3
	mkdir -p "$DIR/data-$name"
	(
		export POSTBACK_NATS_URL="$(nats_url "${name%-[0-9]}")" \
			POSTBACK_REDIS_URL="$REDIS_URL" \
			POSTBACK_STREAM_REPLICAS="$REPLICAS" \
			POSTBACK_SECRET_KEY="$SECRET_KEY" \
			POSTBACK_JOB_KEY="$JOB_KEY" \
			POSTBACK_TOKENS="$TOKEN=*" \
			POSTBACK_ALLOW_CIDRS="$ALLOW" \
			POSTBACK_DATA_DIR="$DIR/data-$name" \
			POSTBACK_HTTP_ADDR="127.0.0.1:$http" \
			OTEL_SERVICE_NAME="postback-$name"
		for kv in "$@"; do export "${kv?}"; done
		start "$name" "$exe"
	)
}

# launch NAME: (re)start one of the services.
declare -A logstart=()
launch() {
	logstart[$1]=0
	[ ! -f "$DIR/logs/$1.log" ] || logstart[$1]=$(wc -l <"$DIR/logs/$1.log")
	case $1 in
	gateway) service gateway "$BIN/postback-gateway" "$GATEWAY_HTTP_PORT" POSTBACK_GRPC_ADDR="127.0.0.1:$GATEWAY_GRPC_PORT" "${HISTORY_ENV[@]}" ;;
	renderer) service renderer "$BIN/postback-renderer" "$RENDERER_HTTP_PORT" ;;
	retry) service retry "$BIN/postback-retry" "$RETRY_HTTP_PORT" ;;
	historian) service historian "$BIN/postback-historian" "$HISTORIAN_HTTP_PORT" "${HISTORY_ENV[@]}" ;;
	sender-1) service sender-1 "$BIN/postback-sender" "$SENDER_1_HTTP_PORT" ;;
	sender-2) service sender-2 "$BIN/postback-sender" "$SENDER_2_HTTP_PORT" ;;
	esac
}
SERVICES="gateway renderer retry historian sender-1 sender-2"

# Wait for every service: /readyz answers and the service has logged that it
# serves ("... ready" / "... consuming": the streams and consumers exist; the
# HTTP listener answers before that). A service that exits while starting is
# started again (at most 5 times), as an orchestrator would: right after a
# JetStream cluster forms (or restarts), a stream can be briefly without a
# leader, and the services give up on creating the layout after a few seconds.
declare -A restarts=()
started_serving() { # started_serving NAME: its log since launch says so
	tail -n +"$((${logstart[$1]:-0} + 1))" "$DIR/logs/$1.log" 2>/dev/null | grep -Eq '"msg":"[^"]*(ready|consuming)'
}
ready_or_restart() { # ready_or_restart NAME URL
	local name=$1 url=$2 deadline=$((SECONDS + TIMEOUT))
	until http_ok "$url" && started_serving "$name"; do
		if ! alive "$name"; then
			restarts[$name]=$((${restarts[$name]:-0} + 1))
			if [ "${restarts[$name]}" -gt 5 ]; then
				echo "run-cluster: $name keeps exiting while starting" >&2
				return 1
			fi
			say "$name exited while starting ($(tail -n 1 "$DIR/logs/$name.log" | cut -c1-200)); starting it again (${restarts[$name]}/5)"
			sed -i "/^$name /d" "$DIR/pids"
			sleep 1
			launch "$name"
		fi
		[ "$SECONDS" -lt "$deadline" ] || { echo "run-cluster: timed out after ${TIMEOUT}s waiting for $name ($url)" >&2; return 1; }
		sleep 0.2
	done
}
# One after the other, each once the previous one serves: the gateway first
# (it creates the streams and buckets). Several processes creating fresh R3
# streams or consumers at the same moment can stall on nats-server (each API
# call times out and the service exits); one at a time they take milliseconds.
launch gateway
ready_or_restart gateway "http://127.0.0.1:$GATEWAY_HTTP_PORT/readyz"
launch renderer
ready_or_restart renderer "http://127.0.0.1:$RENDERER_HTTP_PORT/readyz"
launch retry
ready_or_restart retry "http://127.0.0.1:$RETRY_HTTP_PORT/readyz"
launch historian
ready_or_restart historian "http://127.0.0.1:$HISTORIAN_HTTP_PORT/readyz"
launch sender-1
ready_or_restart sender-1 "http://127.0.0.1:$SENDER_1_HTTP_PORT/readyz"
launch sender-2
ready_or_restart sender-2 "http://127.0.0.1:$SENDER_2_HTTP_PORT/readyz"
wait_for "gateway gRPC port" gateway tcp_open "$GATEWAY_GRPC_PORT"
for name in $SERVICES; do
	alive "$name" || { echo "run-cluster: $name exited: $(tail -n 1 "$DIR/logs/$name.log")" >&2; false; }
done
trap - ERR INT TERM

umask 077
cat >"$DIR/cluster.env" <<EOF
# generated by scripts/run-cluster.sh; source it: set -a; . $DIR/cluster.env; set +a
POSTBACK_GRPC_ADDR=127.0.0.1:$GATEWAY_GRPC_PORT
POSTBACK_TOKEN=$TOKEN
GATEWAY_GRPC=127.0.0.1:$GATEWAY_GRPC_PORT
GATEWAY_HTTP=127.0.0.1:$GATEWAY_HTTP_PORT
RENDERER_HTTP=127.0.0.1:$RENDERER_HTTP_PORT
RETRY_HTTP=127.0.0.1:$RETRY_HTTP_PORT
HISTORIAN_HTTP=127.0.0.1:$HISTORIAN_HTTP_PORT
SENDER_1_HTTP=127.0.0.1:$SENDER_1_HTTP_PORT
SENDER_2_HTTP=127.0.0.1:$SENDER_2_HTTP_PORT
NATS_URL=$NATS_URL
NATS_ADMIN_URL=$(nats_url postback)
NATS_1_MONITOR=http://127.0.0.1:$NATS_MON_1
NATS_2_MONITOR=http://127.0.0.1:$NATS_MON_2
NATS_3_MONITOR=http://127.0.0.1:$NATS_MON_3
REDIS_URL=$REDIS_URL
STREAM_REPLICAS=$REPLICAS
HISTORY_STORE=$HISTORY_STORE
EOF
umask 022

say "ready in $DIR"
echo
printf '  %-10s %s\n' "gRPC" "127.0.0.1:$GATEWAY_GRPC_PORT  (authorization: Bearer \$(cat $DIR/token))"
printf '  %-10s %s\n' "health" "http://127.0.0.1:$GATEWAY_HTTP_PORT/readyz"
printf '  %-10s %s\n' "NATS" "$NATS_URL  (R$REPLICAS; users and passwords in $DIR/nats-passwords)"
printf '  %-10s %s\n' "Redis" "$REDIS_URL"
printf '  %-10s %s\n' "history" "$HISTORY_DESC"
echo
printf '  %-10s %-8s %s\n' process pid log
while read -r name pid _; do
	printf '  %-10s %-8s %s\n' "$name" "$pid" "$DIR/logs/$name.log"
done <"$DIR/pids"
echo
echo "  addresses: $DIR/cluster.env   PIDs: $DIR/pids"
echo "  demo:      (set -a; . $DIR/cluster.env; make demo)"
echo "  stop:      make stop-cluster"
