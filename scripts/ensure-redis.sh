#!/usr/bin/env bash
# ensure-redis.sh — make sure a `redis-server` binary is on this machine.
#
# Tests that need a real Redis (pkg/redistest) call this when redis-server is not
# on PATH; CI and newcomers may call it directly. It installs Debian's
# redis-server package with apt-get and nothing else: it never starts or enables
# the system redis service (each test starts its own server on a free loopback
# port, see pkg/redistest).
#
# Idempotent: when redis-server is already installed it only reports where.
# Safe to run in parallel (several `go test` binaries at once): the install runs
# under an exclusive flock, and the check is repeated once the lock is held, so
# only the first caller installs and the others wait for it.
#
# Exit status: 0 when redis-server is available afterwards, non-zero otherwise.
set -euo pipefail

find_redis() {
	command -v redis-server 2>/dev/null && return 0
	# Debian installs to /usr/bin; a PATH without it should not cause a reinstall.
	[ -x /usr/bin/redis-server ] && { echo /usr/bin/redis-server; return 0; }
	return 1
}

if bin=$(find_redis); then
	echo "ensure-redis: redis-server present at $bin"
	exit 0
fi

lock=${ENSURE_REDIS_LOCK:-/tmp/postback-ensure-redis.lock}
exec 9>"$lock"
echo "ensure-redis: waiting for install lock $lock" >&2
flock 9

if bin=$(find_redis); then
	echo "ensure-redis: redis-server present at $bin (installed by another caller)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "ensure-redis: installing Debian package redis-server (apt-get update && apt-get install -y redis-server)..." >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the system redis service during
# the install; it is removed again afterwards (only if we created it).
created_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends redis-server >&2

if bin=$(find_redis); then
	echo "ensure-redis: installed redis-server at $bin ($("$bin" --version | head -n1))"
	exit 0
fi
echo "ensure-redis: redis-server still missing after install" >&2
exit 1
