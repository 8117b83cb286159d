#!/usr/bin/env bash
# cluster-e2e.sh — end-to-end check of the local multi-process cluster:
#
#   1. builds the binaries and nats-server (make build tools) and the client
#      (scripts/cluster-e2e, its own module);
#   2. starts a fresh cluster with scripts/run-cluster.sh in its own folder
#      (.cluster/e2e-<pid>, so a cluster of `make run-cluster` is untouched):
#      3 NATS JetStream nodes (R3 streams), Redis, gateway, renderer, retry,
#      two senders;
#   3. the client creates an endpoint pointing at its receiver on 127.0.0.1,
#      publishes 1,000 action_clearing events (PublishBatch), SIGKILLs the NATS
#      server leading the DELIVERIES stream and sender-1 mid-run, and waits
#      until every event is delivered; it counts distinct Postback-Delivery-Id
#      headers and reports duplicates separately;
#   4. stops exactly the processes it started (also on failure or Ctrl-C) and
#      removes the folder when the run passed (kept, with its logs, when not).
#
# Loopback only. Bounded: E2E_TIMEOUT seconds for the client (default 300);
# run-cluster has its own 60 s start timeout. Not part of `make test`: a run
# takes about 35-45 s after the build, most of it waiting out the failover of
# the killed NATS server, and it kills processes on purpose.
#
#   ./scripts/cluster-e2e.sh [client flags, e.g. -events 2000 -kill-nats-at 0]
#   E2E_REF=HEAD ./scripts/cluster-e2e.sh    # services built from a commit, not the working tree
#   E2E_KEEP=1 ./scripts/cluster-e2e.sh      # keep .cluster/e2e-<pid> (logs) after a pass too
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TIMEOUT=${E2E_TIMEOUT:-300}
mkdir -p .cluster
export CLUSTER_DIR="$ROOT/.cluster/e2e-$$"
export CLUSTER_FRESH=1
CLIENT="$ROOT/bin/cluster-e2e"
started=$SECONDS

passed=0
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "${client:-}" ]; then
		kill -TERM "$client" 2>/dev/null || true
		wait "$client" 2>/dev/null || true
	fi
	"$ROOT/scripts/stop-cluster.sh" >/dev/null 2>&1 || true
	[ -z "${src:-}" ] || rm -rf "$src"
	if [ "$passed" = 1 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
		rm -rf "$CLUSTER_DIR"
	elif [ "$passed" = 1 ]; then
		echo "cluster-e2e: passed; logs kept in $CLUSTER_DIR/logs (E2E_KEEP=1)"
	elif [ -d "$CLUSTER_DIR" ]; then
		echo "cluster-e2e: FAILED; logs kept in $CLUSTER_DIR/logs" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${E2E_REF:-}" ]; then
	# Build the services from a commit instead of the working tree (which may
	# be mid-edit): git archive into a temporary folder, read-only for the repo.
	src="$CLUSTER_DIR-src"
	echo "cluster-e2e: building the services at $E2E_REF ($(git rev-parse --short "$E2E_REF")) in $src ..."
	rm -rf "$src" && mkdir -p "$src/bin"
	git archive "$E2E_REF" | tar -x -C "$src"
	for s in gateway renderer retry sender historian; do
		[ -d "$src/services/$s" ] || continue # commits before the history writer have none
		(cd "$src" && go build -trimpath -ldflags "-X main.version=$(git -C "$ROOT" rev-parse --short "$E2E_REF")" \
			-o "$src/bin/postback-$s" "./services/$s/cmd/postback-$s")
	done
	make -s tools >/dev/null
	ln -sf "$ROOT/bin/nats-server" "$src/bin/nats-server"
	export CLUSTER_BIN="$src/bin"
else
	echo "cluster-e2e: building (make build tools) ..."
	make -s build tools >/dev/null
fi
./scripts/ensure-redis.sh >/dev/null
mkdir -p "$CLUSTER_DIR"
(cd scripts/cluster-e2e && GOWORK=off go build -o "$CLIENT" .)

echo "cluster-e2e: starting the cluster in $CLUSTER_DIR ..."
cluster_start=$SECONDS
./scripts/run-cluster.sh | sed -n '1,/^$/p'
echo "cluster-e2e: cluster ready in $((SECONDS - cluster_start))s"

run_start=$SECONDS
# In the background and waited for, so that a signal to this script runs the
# cleanup at once (bash defers traps while a foreground child runs).
timeout --signal=TERM --kill-after=10 "$TIMEOUT" "$CLIENT" -dir "$CLUSTER_DIR" "$@" &
client=$!
wait "$client"
client=
echo "cluster-e2e: client run $((SECONDS - run_start))s, total $((SECONDS - started))s (build included)"

echo "cluster-e2e: stopping the cluster ..."
"$ROOT/scripts/stop-cluster.sh" | tail -n 1
passed=1
