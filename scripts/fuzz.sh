#!/usr/bin/env bash
# Short cargo-fuzz runs of every target in fuzz/ (libFuzzer; needs a nightly toolchain and
# `cargo install cargo-fuzz`). Not in CI: the instrumented build alone takes minutes and ~1 GB.
#   scripts/fuzz.sh              # 30 s per target
#   SECONDS_PER_TARGET=600 scripts/fuzz.sh request
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${SECONDS_PER_TARGET:-30}
TARGETS=${*:-request reply admin_json}
for t in $TARGETS; do
  work=$(mktemp -d)
  cp corpus/"$t"/* "$work"/
  echo "== $t ($SECS s)"
  cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$SECS" -max_len=4096 2>&1 | grep -E "^Done|ERROR|panicked" || true
  rm -rf "$work"
done
