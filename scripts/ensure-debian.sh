#!/usr/bin/env bash
# ensure-debian.sh NAME BINARY PACKAGE — make sure BINARY is on this machine,
# installing Debian's PACKAGE with apt-get when it is missing. ensure-redis.sh
# (redis-server) and ensure-promtool.sh (promtool, from prometheus) are this
# with their names; tests and deploy-check call those when the binary is not
# on PATH, and CI and newcomers may call them directly.
#
# It installs the package and nothing else: a policy-rc.d answering 101 keeps
# dpkg from starting the package's system service during the install (each
# test starts its own server on a free loopback port), and is removed again
# afterwards when this script created it.
#
# Idempotent: when BINARY is already installed it only reports where (on PATH
# or in /usr/bin, so a PATH without /usr/bin does not cause a reinstall). Safe
# to run in parallel (several `go test` binaries at once): the install runs
# under an exclusive flock (/tmp/postback-ensure-NAME.lock, or
# ENSURE_<NAME>_LOCK), and the check is repeated once the lock is held, so only
# the first caller installs and the others wait for it.
#
# Exit status: 0 when BINARY is available afterwards, non-zero otherwise.
set -euo pipefail

name=$1 binary=$2 package=$3

find_binary() {
	command -v "$binary" 2>/dev/null && return 0
	[ -x "/usr/bin/$binary" ] && { echo "/usr/bin/$binary"; return 0; }
	return 1
}

if bin=$(find_binary); then
	echo "ensure-$name: $binary present at $bin"
	exit 0
fi

lockvar="ENSURE_$(echo "$name" | tr 'a-z-' 'A-Z_')_LOCK"
lock=${!lockvar:-/tmp/postback-ensure-$name.lock}
exec 9>"$lock"
echo "ensure-$name: waiting for install lock $lock" >&2
flock 9

if bin=$(find_binary); then
	echo "ensure-$name: $binary present at $bin (installed by another caller)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "ensure-$name: installing Debian package $package (apt-get update && apt-get install -y $package)..." >&2
export DEBIAN_FRONTEND=noninteractive
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
$SUDO apt-get install -y -q --no-install-recommends "$package" >&2

if bin=$(find_binary); then
	echo "ensure-$name: installed $binary at $bin ($("$bin" --version 2>&1 | head -n1))"
	exit 0
fi
echo "ensure-$name: $binary still missing after install" >&2
exit 1
