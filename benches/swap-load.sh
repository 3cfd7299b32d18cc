#!/usr/bin/env bash
# Routing-table swaps under load (issue 4): p99 of redis-benchmark through a godwit interlay held
# by a running canary migration (dual writes to a second redis-server), with and without a
# background loop that changes the migration 100 times per second (PATCH /traffic, alternating
# read_percentage 0.05 and 0.10; each PATCH is persisted and republishes the routing table, which
# every open client connection picks up at its next command). Runs alternate (quiet, http-only,
# swapping) within each round; medians over ROUNDS. "http-only" sends the same number of admin
# requests but reads (GET of the migration), so the cost of the swaps themselves is the
# difference between it and "swapping" (on a 2-core machine the swapper process and the admin
# work compete with redis-benchmark and Redis for CPU).
#
#   benches/swap-load.sh                 # builds target/release/godwit first
#   ROUNDS=5 SWAPS_PER_S=100 NO_BUILD=1 benches/swap-load.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-1000000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
SWAPS_PER_S=${SWAPS_PER_S:-100}

WORK=$(mktemp -d -t godwit-swap-XXXXXX)
cleanup() {
    [[ -n ${SWAPPER:-} ]] && kill "$SWAPPER" 2>/dev/null || true
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN=$(godwit_bin) || die "no godwit binary"
OLD=$(free_port)
start_redis "$WORK/old" "$OLD"
NEW=$(free_port)
start_redis "$WORK/new" "$NEW"
PORT=$(free_port)
ADMIN=$(free_port)
write_godwit_config "$WORK/godwit.toml" "$WORK/data" "$PORT" "$ADMIN" "redis://127.0.0.1:$OLD" 1
add_new_endpoint_and_token "$WORK/godwit.toml" "redis://127.0.0.1:$NEW"
TOKEN=$ADMIN_TOKEN
start_godwit "$BIN" "$WORK/godwit.toml" "$PORT" "$WORK/godwit.log" || die "godwit did not start"
api() { admin_api "$ADMIN" "$@" >/dev/null; }
api POST migrations '{"id":"swap","strategy":{"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}},"data":null}'
api POST migrations/swap/interlay/main '{"endpoint":"new"}'
api POST migrations/swap/test
api POST migrations/swap/migrate

# swapper: PATCHes at SWAPS_PER_S, reports the rate it achieved
cat >"$WORK/swapper.py" <<'PY'
import json, sys, time, urllib.request
admin, token, rate, out, control = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
url = f"http://127.0.0.1:{admin}/api/v1/migrations/swap/traffic"
if control:  # same HTTP load, no routing change: isolates the cost of the swaps themselves
    url = f"http://127.0.0.1:{admin}/api/v1/migrations/swap"
n, start = 0, time.monotonic()
try:
    while True:
        body = json.dumps({"read_percentage": 0.10 if n % 2 else 0.05}).encode()
        req = urllib.request.Request(url, data=None if control else body, method="GET" if control else "PATCH",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if n % 50 == 0:
            with open(out, "w") as f:
                f.write(f"{n / (time.monotonic() - start):.1f}")
except KeyboardInterrupt:
    pass
PY

run() { # -> "rps p99"
    redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CLIENTS" -n "$REQUESTS" -P "$PIPELINE" -r 100000 -t set,get --csv 2>/dev/null |
        tr -d '"' | awk -F, 'NR > 1 && NF >= 7 { rps += $2; if ($7 > p99) p99 = $7 } END { printf "%.0f %.3f\n", rps / 2, p99 }'
}

log "warm-up"
run >/dev/null
RAW="$WORK/raw.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in quiet http-only swapping; do
        if [[ $mode != quiet ]]; then
            python3 "$WORK/swapper.py" "$ADMIN" "$TOKEN" "$SWAPS_PER_S" "$WORK/rate" "$([[ $mode == http-only ]] && echo 1 || echo 0)" &
            SWAPPER=$!
            sleep 0.5
        fi
        read -r rps p99 < <(run)
        rate=-
        if [[ $mode != quiet ]]; then
            rate=$(cat "$WORK/rate" 2>/dev/null || echo "?")
            kill "$SWAPPER" 2>/dev/null || true
            wait "$SWAPPER" 2>/dev/null || true
            SWAPPER=
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$rps" "$p99" "$rate" >>"$RAW"
        log "round $r $mode: $rps req/s (mean of SET, GET), p99 $p99 ms (worst of SET, GET), swaps/s $rate"
    done
done
python3 - "$RAW" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
med = lambda mode, i: statistics.median(float(r[i]) for r in rows if r[1] == mode)
q_rps, s_rps, q_p99, s_p99 = med("quiet", 2), med("swapping", 2), med("quiet", 3), med("swapping", 3)
h_rps, h_p99 = med("http-only", 2), med("http-only", 3)
rates = [r[4] for r in rows if r[1] == "swapping"]
print("| mode | req/s | p99 ms |\n|---|---:|---:|")
print(f"| quiet | {q_rps:,.0f} | {q_p99:.3f} |")
print(f"| http-only (GET of the migration at the same rate: the admin load without swaps) | {h_rps:,.0f} | {h_p99:.3f} |")
print(f"| swapping ({', '.join(rates)} swaps/s) | {s_rps:,.0f} | {s_p99:.3f} |")
print(f"\np99 swapping / quiet: {s_p99 / q_p99:.2f}x; swapping / http-only: {s_p99 / h_p99:.2f}x; "
      f"req/s swapping / quiet: {s_rps / q_rps:.2f}x")
PY
