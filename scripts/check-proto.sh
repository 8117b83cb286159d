#!/usr/bin/env bash
# Lints the proto files and fails when the committed generated Go code differs
# from what `buf generate` produces now (someone edited a .proto without
# running `make proto`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/bin:$PATH"
cd "$root/proto"
buf lint
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/proto/." "$tmp/"
find "$tmp" -name '*.pb.go' -delete
(cd "$tmp" && buf generate)
stale=0
while IFS= read -r f; do
  rel="${f#$tmp/}"
  if ! cmp -s "$f" "$root/proto/$rel"; then
    echo "stale generated code: proto/$rel (run 'make proto')"; stale=1
  fi
done < <(find "$tmp" -name '*.pb.go')
while IFS= read -r f; do
  rel="${f#$root/proto/}"
  [ -f "$tmp/$rel" ] || { echo "generated file without a source: proto/$rel"; stale=1; }
done < <(find "$root/proto" -name '*.pb.go')
[ "$stale" = 0 ] && echo "proto: lint ok, generated code current"
exit "$stale"
