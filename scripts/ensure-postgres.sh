#!/usr/bin/env bash
# ensure-postgres.sh — make sure PostgreSQL's server binaries (initdb, pg_ctl,
# postgres) are on this machine.
#
# Tests that need a real PostgreSQL (pkg/pgtest) call this when initdb or
# pg_ctl cannot be found; CI and newcomers may call it directly. It installs
# Debian's postgresql package (PostgreSQL 15 on bookworm) with apt-get and
# nothing else: it never starts or enables the system postgresql service
# (each test binary runs its own server in a temporary directory on a free
# loopback port, see pkg/pgtest), and if the package started it anyway it is
# stopped and disabled again.
#
# The binaries are looked for on PATH and in /usr/lib/postgresql/*/bin (where
# Debian puts them: only a few wrappers land on PATH), so a PATH without them
# does not cause a reinstall.
#
# Idempotent: when the binaries are present it only reports where. Safe to run
# in parallel (several `go test` binaries at once): the install runs under an
# exclusive flock, and the check is repeated once the lock is held, so only
# the first caller installs and the others wait for it.
#
# Exit status: 0 when initdb and pg_ctl are available afterwards, non-zero
# otherwise. The last line of output names the directory holding them.
set -euo pipefail

# find_postgres prints the directory holding initdb, pg_ctl and postgres.
find_postgres() {
	local initdb pgctl dir
	if initdb=$(command -v initdb 2>/dev/null) && pgctl=$(command -v pg_ctl 2>/dev/null); then
		dir=$(dirname "$(readlink -f "$initdb")")
		if [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ]; then
			echo "$dir"
			return 0
		fi
	fi
	# Debian: /usr/lib/postgresql/<major>/bin, newest major first.
	for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5nr); do
		if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
			echo "$dir"
			return 0
		fi
	done
	return 1
}

if dir=$(find_postgres); then
	echo "ensure-postgres: initdb, pg_ctl and postgres present in $dir"
	exit 0
fi

lock=${ENSURE_POSTGRES_LOCK:-/tmp/postback-ensure-postgres.lock}
exec 9>"$lock"
echo "ensure-postgres: waiting for install lock $lock" >&2
flock 9

if dir=$(find_postgres); then
	echo "ensure-postgres: initdb, pg_ctl and postgres present in $dir (installed by another caller)"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "ensure-postgres: installing Debian package postgresql (apt-get update && apt-get install -y postgresql)..." >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the system postgresql service
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
$SUDO apt-get install -y -q --no-install-recommends postgresql >&2

# Should the package have started (or enabled) the system service after all
# (a policy-rc.d that was already there and allows it, a systemd host), stop
# and disable it: tests never use it.
$SUDO service postgresql stop >/dev/null 2>&1 || true
if command -v systemctl >/dev/null 2>&1; then
	$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
	$SUDO update-rc.d postgresql disable >/dev/null 2>&1 || true
fi

if dir=$(find_postgres); then
	echo "ensure-postgres: installed PostgreSQL ($("$dir/postgres" --version)); initdb, pg_ctl and postgres in $dir"
	exit 0
fi
echo "ensure-postgres: initdb/pg_ctl still missing after install" >&2
exit 1
