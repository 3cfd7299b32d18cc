#!/usr/bin/env bash
# Copy rate (issue 5): godwit's mover vs Redis's own `MIGRATE … COPY REPLACE KEYS` in batches,
# old → new, on this machine, in one run. Both copy the same KEYS small keys (DEBUG POPULATE,
# 10-byte values) into an emptied target; the ratio is mover keys/s ÷ MIGRATE keys/s.
#
#   benches/copy-compare.sh                    # 1M keys, MIGRATE batches of 5000
#   KEYS=200000 BATCH=5000 NO_BUILD=1 benches/copy-compare.sh
#   ROUNDS=5 benches/copy-compare.sh          # alternating rounds (default 3), medians reported
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

KEYS=${KEYS:-1000000}
BATCH=${BATCH:-5000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

WORK=$(mktemp -d -t godwit-copy-XXXXXX)
cleanup() {
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${NO_BUILD:-} ]]; then
    log "building the copy example (release)"
    (cd "$ROOT" && cargo build -q --release -p godwit-mover --example copy)
fi
COPY=$TARGET_DIR/release/examples/copy
[[ -x $COPY ]] || die "no $COPY (build it or unset NO_BUILD)"

OLD=$(free_port)
start_redis "$WORK/old" "$OLD" --enable-debug-command local
NEW=$(free_port)
start_redis "$WORK/new" "$NEW"
cli() { redis-cli -p "$1" "${@:2}"; }

log "populating $KEYS keys on old"
cli "$OLD" DEBUG POPULATE "$KEYS" k 10 >/dev/null
[[ $(cli "$OLD" DBSIZE) == "$KEYS" ]] || die "populate failed"

# MIGRATE: one RESP file of KEYS/BATCH commands, sent with --pipe (replies read as they come)
python3 - "$KEYS" "$BATCH" "$NEW" >"$WORK/migrate.resp" <<'PY'
import sys
n, batch, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = sys.stdout
def cmd(args):
    out.write("*%d\r\n" % len(args))
    for a in args:
        out.write("$%d\r\n%s\r\n" % (len(a.encode()), a))
for start in range(0, n, batch):
    keys = ["k:%d" % i for i in range(start, min(n, start + batch))]
    cmd(["MIGRATE", "127.0.0.1", port, "", "0", "5000", "COPY", "REPLACE", "KEYS"] + keys)
PY
now() { date +%s.%N; }
ROUNDS=${ROUNDS:-3}
MIGRATE_RATES=()
MOVER_RATES=()
for round in $(seq 1 "$ROUNDS"); do
    cli "$NEW" FLUSHALL >/dev/null
    log "round $round: MIGRATE COPY REPLACE KEYS in batches of $BATCH"
    t0=$(now)
    cli "$OLD" --pipe <"$WORK/migrate.resp" >"$WORK/migrate.out"
    t1=$(now)
    grep -q "errors: 0" "$WORK/migrate.out" || die "MIGRATE errors: $(cat "$WORK/migrate.out")"
    [[ $(cli "$NEW" DBSIZE) == "$KEYS" ]] || die "MIGRATE copied $(cli "$NEW" DBSIZE) keys"
    rate=$(python3 -c "print(round($KEYS / ($t1 - $t0)))")
    MIGRATE_RATES+=("$rate")
    log "MIGRATE: $KEYS keys in $(python3 -c "print(round($t1 - $t0, 3))") s = $rate keys/s"

    cli "$NEW" FLUSHALL >/dev/null
    log "round $round: godwit mover (SCAN + Lua PTTL/DUMP batches → pipelined RESTORE ABSTTL REPLACE)"
    OUT=$("$COPY" "redis://127.0.0.1:$OLD" "redis://127.0.0.1:$NEW")
    log "$OUT"
    [[ $(cli "$NEW" DBSIZE) == "$KEYS" ]] || die "mover copied $(cli "$NEW" DBSIZE) keys"
    MOVER_RATES+=("$(sed -E 's/.*: ([0-9]+) keys\/s/\1/' <<<"$OUT")")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }
MIGRATE_RATE=$(median "${MIGRATE_RATES[@]}")
MOVER_RATE=$(median "${MOVER_RATES[@]}")
RATIO=$(python3 -c "print(round($MOVER_RATE / $MIGRATE_RATE, 2))")
log "per round: MIGRATE ${MIGRATE_RATES[*]}; mover ${MOVER_RATES[*]}"
printf 'keys\tmigrate_keys_per_s\tmover_keys_per_s\tratio\n%s\t%s\t%s\t%s\n' \
    "$KEYS" "$MIGRATE_RATE" "$MOVER_RATE" "$RATIO"
