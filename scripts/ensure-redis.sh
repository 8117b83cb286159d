#!/usr/bin/env bash
# ensure-redis.sh — make sure a `redis-server` binary is on this machine, for
# the tests that need a real Redis (pkg/redistest). Installs Debian's
# redis-server package when missing, never starts its service; see
# ensure-debian.sh for the locking and failure policy.
exec "$(dirname "$0")/ensure-debian.sh" redis redis-server redis-server
