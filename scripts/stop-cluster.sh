#!/usr/bin/env bash
# stop-cluster.sh — stop the local cluster of scripts/run-cluster.sh
# (`make stop-cluster`). It ends exactly the processes listed in
# $CLUSTER_DIR/pids (default .cluster/pids), and only those still running the
# binary recorded there (a reused PID is left alone): the Postback services
# first (gateway, renderer, retry, historian, senders: SIGTERM, so they finish
# in-flight work; the historian stores its batch or leaves it unacked), then
# Redis and NATS; whatever has not exited after CLUSTER_STOP_TIMEOUT seconds
# (default 20) gets SIGKILL. Data (NATS, the embedded history store history/),
# logs, key and token stay in the folder for the next run-cluster;
# CLUSTER_PURGE=1 removes the folder too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CLUSTER_DIR:-$ROOT/.cluster}
TIMEOUT=${CLUSTER_STOP_TIMEOUT:-20}
# Reporting must never stop the stopping (a closed stdout, `| head`).
trap '' PIPE
say() { printf 'stop-cluster: %s\n' "$*" 2>/dev/null || true; }

if [ ! -s "$DIR/pids" ]; then
	say "no cluster recorded in $DIR/pids"
else
	# ours PID EXE: the PID still runs the binary we started (not a zombie);
	# " (deleted)": the binary was rebuilt since, the process is still ours.
	ours() {
		local exe
		exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
		{ [ "$exe" = "$2" ] || [ "$exe" = "$2 (deleted)" ]; } &&
			! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
	}
	mapfile -t lines <"$DIR/pids"
	services=() infra=()
	for l in "${lines[@]}"; do
		case "$l" in
		nats-* | redis\ *) infra+=("$l") ;;
		*) services+=("$l") ;;
		esac
	done
	# stop_group LINES...: SIGTERM each live process, wait, then SIGKILL the rest.
	stop_group() {
		local l name pid exe waiting deadline
		waiting=()
		for l in "$@"; do
			read -r name pid exe <<<"$l"
			if ours "$pid" "$exe"; then
				kill -TERM "$pid" 2>/dev/null && waiting+=("$l")
			fi
		done
		deadline=$((SECONDS + TIMEOUT))
		while [ ${#waiting[@]} -gt 0 ]; do
			local still=()
			for l in "${waiting[@]}"; do
				read -r name pid exe <<<"$l"
				if ours "$pid" "$exe"; then still+=("$l"); else say "$name (PID $pid) stopped"; fi
			done
			waiting=("${still[@]+"${still[@]}"}")
			[ ${#waiting[@]} -gt 0 ] || break
			if [ "$SECONDS" -ge "$deadline" ]; then
				for l in "${waiting[@]}"; do
					read -r name pid exe <<<"$l"
					say "$name (PID $pid) did not stop in ${TIMEOUT}s: SIGKILL"
					kill -KILL "$pid" 2>/dev/null || true
				done
				break
			fi
			sleep 0.2
		done
	}
	[ ${#services[@]} -eq 0 ] || stop_group "${services[@]}"
	[ ${#infra[@]} -eq 0 ] || stop_group "${infra[@]}"
	rm -f "$DIR/pids"
	say "done (data and logs kept in $DIR)"
fi
if [ "${CLUSTER_PURGE:-0}" = 1 ] && [ -d "$DIR" ]; then
	rm -rf "$DIR"
	say "removed $DIR"
fi
