#!/usr/bin/env bash
# The single test command (CI runs it through .ci/run): deps, format, lints, build, tests.
# Fail-fast. Uses the default target dir unless CARGO_TARGET_DIR is set.
#
#   scripts/test.sh                 # everything
#   SKIP_DEPS=1 scripts/test.sh     # skip scripts/install-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

if [[ -z ${SKIP_DEPS:-} ]]; then
    step "install deps"
    bash scripts/install-deps.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build"
cargo build --workspace --all-targets
cargo bench --no-run -p godwit-benches

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; run them first so nextest's summary closes the output.
    step "cargo test --doc"
    cargo test --workspace --doc
    step "cargo nextest run"
    cargo nextest run --workspace --no-fail-fast --no-tests=warn
else
    step "cargo test"
    cargo test --workspace --no-fail-fast
fi

step "short fuzz run (request parser, reply scanner)"
bash scripts/fuzz-ci.sh

step "ok in $((SECONDS - started))s"
