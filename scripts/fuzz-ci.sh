#!/usr/bin/env bash
# The short fuzz run CI does: the RESP request parser and reply scanner targets of fuzz/ for
# SECONDS_PER_TARGET (15) seconds each, from their seed corpora. Skipped with a message when no
# nightly toolchain or cargo-fuzz is installed, or when the instrumented build itself fails (a
# toolchain problem, not a finding); fails when the fuzzer finds a crash (the input is kept in
# fuzz/artifacts/<target>/). Longer runs and the admin_json target: scripts/fuzz.sh.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${SECONDS_PER_TARGET:-15}
TARGETS=(request reply)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped (needs a nightly toolchain and cargo-fuzz)"
    exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${TARGETS[@]}"; do
    if ! timeout 900 cargo +nightly fuzz build "$t" >"$log" 2>&1; then
        echo "fuzz: skipped: the instrumented build of $t failed:"
        tail -5 "$log"
        exit 0
    fi
done
for t in "${TARGETS[@]}"; do
    work=$(mktemp -d)
    cp corpus/"$t"/* "$work"/
    if ! cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$SECS" -max_len=4096 >"$log" 2>&1; then
        echo "fuzz: $t found a crash:"
        tail -40 "$log"
        rm -rf "$work"
        exit 1
    fi
    echo "fuzz: $t: $(grep -E '^Done' "$log" | tail -1)"
    rm -rf "$work"
done
