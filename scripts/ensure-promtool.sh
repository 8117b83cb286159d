#!/usr/bin/env bash
# ensure-promtool.sh — make sure a `promtool` binary is on this machine.
#
# `make lint` (scripts/deploycheck) runs `promtool check rules` and
# `promtool test rules` on deploy/prometheus/ and calls this when promtool is
# not on PATH; CI and newcomers may call it directly. It installs Debian's
# prometheus package (which ships /usr/bin/promtool) with apt-get and nothing
# else: it never starts or enables the system prometheus service.
#
# Idempotent: when promtool is already installed it only reports where.
# Safe to run in parallel: the install runs under an exclusive flock, and the
# check is repeated once the lock is held, so only the first caller installs
# and the others wait for it.
#
# Exit status: 0 when promtool is available afterwards, non-zero otherwise.
set -euo pipefail

find_promtool() {
	command -v promtool 2>/dev/null && return 0
	# Debian installs to /usr/bin; a PATH without it should not cause a reinstall.
	[ -x /usr/bin/promtool ] && { echo /usr/bin/promtool; return 0; }
	return 1
}

if bin=$(find_promtool); then
	echo "ensure-promtool: promtool present at $bin"
	exit 0
fi

lock=${ENSURE_PROMTOOL_LOCK:-/tmp/postback-ensure-promtool.lock}
exec 9>"$lock"
echo "ensure-promtool: waiting for install lock $lock" >&2
flock 9

if bin=$(find_promtool); then
	echo "ensure-promtool: promtool present at $bin (installed by another caller)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "ensure-promtool: installing Debian package prometheus for promtool (apt-get update && apt-get install -y prometheus)..." >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the system prometheus service
# during the install; it is removed again afterwards (only if we created it).
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
$SUDO apt-get install -y -q --no-install-recommends prometheus >&2

if bin=$(find_promtool); then
	echo "ensure-promtool: installed promtool at $bin ($("$bin" --version 2>&1 | head -n1))"
	exit 0
fi
echo "ensure-promtool: promtool still missing after install" >&2
exit 1
