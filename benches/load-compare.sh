#!/usr/bin/env bash
# Load comparison in ONE run: direct Redis vs twemproxy (nutcracker) vs godwit, all in front of
# the same fresh redis-server, on free ports. redis-benchmark, 50 clients, SET and GET, -P 1 and
# -P 16, targets alternating within each round, medians over ROUNDS rounds. Per run it reads the
# CPU time (utime+stime from /proc/PID/stat) of the proxy and of redis-server before and after.
#
# Prints a Markdown table and writes it to benches/results/latest.md (raw rows: latest.tsv).
#
#   benches/load-compare.sh                       # builds target/release/godwit first
#   ROUNDS=5 REQUESTS=300000 benches/load-compare.sh
#   GODWIT_BIN=/path/to/godwit NO_BUILD=1 ...      # use a given binary
#   SKIP_GODWIT=1 benches/load-compare.sh         # direct and twemproxy only
#
# Env: ROUNDS (3), REQUESTS (200000, for -P 1), REQUESTS_PIPELINED (5x REQUESTS, for -P 16),
# CLIENTS (50), PIPELINES ("1 16"), TESTS ("set get"), KEYSPACE (100000, -r), DATA_SIZE (3),
# GODWIT_WORKERS (1, the proxy's worker_threads; twemproxy is single-threaded), OUT (results dir),
# CANARY (1: also measure target `godwit-canary`: the same godwit process, a second interlay held
# by a running canary migration, read_percentage 0.05 and dual writes old-authoritative to a
# second redis-server "new"; 0 to skip).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
REQUESTS_PIPELINED=${REQUESTS_PIPELINED:-$((REQUESTS * 5))}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-"set get"}
KEYSPACE=${KEYSPACE:-100000}
DATA_SIZE=${DATA_SIZE:-3}
GODWIT_WORKERS=${GODWIT_WORKERS:-1}
OUT=${OUT:-$ROOT/benches/results}

for tool in redis-server redis-benchmark redis-cli nutcracker python3; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done

WORK=$(mktemp -d -t godwit-load-XXXXXX)
cleanup() {
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- redis -------------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
start_redis "$WORK/redis" "$REDIS_PORT"
log "redis-server pid $REDIS_PID on $REDIS_PORT"
declare -A PORT PID
PORT[direct]=$REDIS_PORT
PID[direct]=""
TARGETS=(direct)

# --- twemproxy ---------------------------------------------------------------------------------
TW_PORT=$(free_port)
TW_STATS=$(free_port)
cat >"$WORK/nutcracker.yml" <<YAML
godwit_bench:
  listen: 127.0.0.1:$TW_PORT
  hash: fnv1a_64
  distribution: ketama
  redis: true
  preconnect: true
  auto_eject_hosts: false
  server_connections: 1
  timeout: 5000
  servers:
   - 127.0.0.1:$REDIS_PORT:1
YAML
nutcracker -c "$WORK/nutcracker.yml" -s "$TW_STATS" -a 127.0.0.1 -p "$WORK/nutcracker.pid" \
    -o "$WORK/nutcracker.log" </dev/null >/dev/null 2>&1 &
GODWIT_PIDS+=("$!")
PID[twemproxy]=$!
wait_ping "$TW_PORT" 15 "${PID[twemproxy]}" || die "nutcracker did not start: $(tail -5 "$WORK/nutcracker.log")"
PORT[twemproxy]=$TW_PORT
TARGETS+=(twemproxy)
log "nutcracker pid ${PID[twemproxy]} on $TW_PORT"

# --- godwit ------------------------------------------------------------------------------------
GODWIT_NOTE=""
if [[ -n ${SKIP_GODWIT:-} ]]; then
    GODWIT_NOTE="godwit skipped (SKIP_GODWIT set)"
elif ! BIN=$(godwit_bin); then
    GODWIT_NOTE="godwit skipped: no binary (set GODWIT_BIN or fix \`cargo build --release -p godwit\`)"
else
    G_PORT=$(free_port)
    G_ADMIN=$(free_port)
    write_godwit_config "$WORK/godwit.toml" "$WORK/godwit-data" "$G_PORT" "$G_ADMIN" \
        "redis://127.0.0.1:$REDIS_PORT" "$GODWIT_WORKERS"
    if [[ ${CANARY:-1} == 1 ]]; then
        NEW_PORT=$(free_port)
        start_redis "$WORK/redis-new" "$NEW_PORT"
        NEW_REDIS_PID=$REDIS_PID
        REDIS_PID=$(redis-cli -p "$REDIS_PORT" info server | awk -F: '/^process_id/ { print $2+0 }')
        C_PORT=$(free_port)
        add_new_endpoint_and_token "$WORK/godwit.toml" "redis://127.0.0.1:$NEW_PORT"
        cat >>"$WORK/godwit.toml" <<TOML

[[interlays]]
id = "canary"
endpoint = "old"
listen = "127.0.0.1:$C_PORT"
TOML
    fi
    if start_godwit "$BIN" "$WORK/godwit.toml" "$G_PORT" "$WORK/godwit.log"; then
        PORT[godwit]=$G_PORT
        PID[godwit]=$GODWIT_PID
        TARGETS+=(godwit)
        log "godwit pid $GODWIT_PID on $G_PORT ($BIN, worker_threads=$GODWIT_WORKERS)"
        if [[ ${CANARY:-1} == 1 ]]; then
            api() { admin_api "$G_ADMIN" "$@" >/dev/null; }
            api POST migrations '{"id":"bench","strategy":{"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}},"data":null}'
            api POST migrations/bench/interlay/canary '{"endpoint":"new"}'
            api POST migrations/bench/test
            api POST migrations/bench/migrate
            PORT[godwit-canary]=$C_PORT
            PID[godwit-canary]=$GODWIT_PID
            TARGETS+=(godwit-canary)
            log "godwit-canary on $C_PORT: canary 0.05, dual write to redis-server $NEW_PORT (pid $NEW_REDIS_PID)"
        fi
    else
        GODWIT_NOTE="godwit skipped: $BIN did not answer PING ($(tail -3 "$WORK/godwit.log" | tr '\n' ' '))"
    fi
fi
[[ -n $GODWIT_NOTE ]] && log "$GODWIT_NOTE"

# --- measurement -------------------------------------------------------------------------------
# CPU seconds (utime+stime, all threads) of PID; 0 for none.
cpu_seconds() {
    local pid=$1
    [[ -z $pid ]] && { echo 0; return; }
    local tck
    tck=$(getconf CLK_TCK)
    # Fields after "pid (comm) ": state is $1, utime $12, stime $13.
    sed 's/^.*) //' "/proc/$pid/stat" | awk -v t="$tck" '{ printf "%.4f\n", ($12 + $13) / t }'
}

# bench TARGET TEST PIPELINE REQUESTS -> "rps p50 p99 proxy_cpu redis_cpu"
bench() {
    local target=$1 test=$2 pipeline=$3 n=$4 port=${PORT[$1]} pid=${PID[$1]}
    local p0 r0 p1 r1 csv
    p0=$(cpu_seconds "$pid")
    r0=$(cpu_seconds "$REDIS_PID")
    csv=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$n" -P "$pipeline" \
        -r "$KEYSPACE" -d "$DATA_SIZE" -t "$test" --csv 2>/dev/null)
    p1=$(cpu_seconds "$pid")
    r1=$(cpu_seconds "$REDIS_PID")
    # "test","rps","avg","min","p50","p95","p99","max"
    local row
    row=$(printf '%s\n' "$csv" | tr -d '"' | awk -F, 'NR > 1 && NF >= 7 { print $2, $5, $7; exit }')
    [[ -n $row ]] || die "no result from redis-benchmark against $target: $csv"
    echo "$row $(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.4f", b - a }') \
$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.4f", b - a }')"
}

mkdir -p "$OUT"
RAW="$WORK/raw.tsv"
printf 'round\ttest\tpipeline\ttarget\trequests\trps\tp50_ms\tp99_ms\tproxy_cpu_s\tredis_cpu_s\n' >"$RAW"

log "warm-up"
for t in "${TARGETS[@]}"; do
    bench "$t" set 16 $((REQUESTS / 4)) >/dev/null
    bench "$t" get 1 $((REQUESTS / 10)) >/dev/null
done

n_targets=${#TARGETS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    for pipeline in $PIPELINES; do
        n=$REQUESTS
        [[ $pipeline -gt 1 ]] && n=$REQUESTS_PIPELINED
        for test in $TESTS; do
            # rotate the target order every round and every test, so no target always goes first
            for ((i = 0; i < n_targets; i++)); do
                t=${TARGETS[(i + round + ${#test}) % n_targets]}
                read -r rps p50 p99 pcpu rcpu < <(bench "$t" "$test" "$pipeline" "$n")
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "${test^^}" "$pipeline" \
                    "$t" "$n" "$rps" "$p50" "$p99" "$pcpu" "$rcpu" >>"$RAW"
                log "round $round ${test^^} -P $pipeline $t: $rps rps p50 $p50 p99 $p99 proxy ${pcpu}s redis ${rcpu}s"
            done
        done
    done
done

cp "$RAW" "$OUT/latest.tsv"
python3 "$ROOT/benches/load_compare_report.py" "$RAW" \
    --rounds "$ROUNDS" --clients "$CLIENTS" --requests "$REQUESTS" \
    --requests-pipelined "$REQUESTS_PIPELINED" --godwit-workers "$GODWIT_WORKERS" \
    --note "$GODWIT_NOTE" --rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    >"$OUT/latest.md"
cat "$OUT/latest.md"
log "wrote $OUT/latest.md and $OUT/latest.tsv"
