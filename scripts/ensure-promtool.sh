#!/usr/bin/env bash
# ensure-promtool.sh — make sure a `promtool` binary is on this machine, for
# `make lint` (scripts/deploycheck runs `promtool check rules` and `promtool
# test rules` on deploy/prometheus/). Installs Debian's prometheus package
# (which ships /usr/bin/promtool) when missing, never starts its service; see
# ensure-debian.sh for the locking and failure policy.
exec "$(dirname "$0")/ensure-debian.sh" promtool promtool prometheus
