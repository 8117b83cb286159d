#!/usr/bin/env bash
# ensure-chromium.sh — make sure a `chromium` binary is on this machine, for the
# console's end-to-end browser tests (services/gateway/console, driven with
# chromedp). Installs Debian's chromium package when missing; see
# ensure-debian.sh for the locking and failure policy.
exec "$(dirname "$0")/ensure-debian.sh" chromium chromium chromium
