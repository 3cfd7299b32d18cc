#!/usr/bin/env bash
# A Redis Cluster behind godwit vs the same cluster driven directly by a cluster-aware client,
# in ONE run: a 3-master cluster on free ports, godwit (release) with a `cluster = true`
# endpoint in front of it, then redis-benchmark against godwit and `redis-benchmark --cluster`
# against the cluster itself (the client routes by slot), SET and GET, -P 1 and -P 16,
# alternating within each round, medians over ROUNDS rounds.
#
#   benches/cluster-compare.sh                 # builds target/release/godwit first
#   ROUNDS=5 REQUESTS=300000 NO_BUILD=1 benches/cluster-compare.sh
#
# Env: ROUNDS (3), REQUESTS (200000, -P 1; 5x for -P 16), CLIENTS (50), KEYSPACE (100000),
# GODWIT_WORKERS (1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
GODWIT_WORKERS=${GODWIT_WORKERS:-1}

for tool in redis-server redis-benchmark redis-cli python3; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done
BIN=$(godwit_bin) || die "no godwit binary"

WORK=$(mktemp -d -t godwit-cluster-XXXXXX)
cleanup() {
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a 3-master cluster ------------------------------------------------------------------------
NODES=()
for i in 1 2 3; do
    port=$(free_port)
    bus=$(free_port)
    start_redis "$WORK/node$i" "$port" --cluster-enabled yes --cluster-port "$bus" \
        --cluster-config-file "$WORK/node$i/nodes.conf"
    NODES+=("127.0.0.1:$port")
done
redis-cli --cluster create "${NODES[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/create.log" 2>&1 ||
    die "cluster create failed: $(tail -5 "$WORK/create.log")"
SEED=${NODES[0]##*:}
for _ in $(seq 1 100); do
    ok=1
    for n in "${NODES[@]}"; do
        redis-cli -p "${n##*:}" cluster info | grep -q 'cluster_state:ok' || ok=0
    done
    [[ $ok == 1 ]] && break
    sleep 0.1
done
[[ $ok == 1 ]] || die "the cluster did not become ok"
log "cluster: ${NODES[*]}"

# --- godwit in front of it ---------------------------------------------------------------------
GW_PORT=$(free_port)
ADMIN_PORT=$(free_port)
write_godwit_config "$WORK/godwit.toml" "$WORK/data" "$GW_PORT" "$ADMIN_PORT" \
    "redis://127.0.0.1:$SEED" "$GODWIT_WORKERS"
sed -i "s|^url = \"redis://127.0.0.1:$SEED\"|&\ncluster = true|" "$WORK/godwit.toml"
start_godwit "$BIN" "$WORK/godwit.toml" "$GW_PORT" "$WORK/godwit.log" ||
    die "godwit did not start: $(tail -5 "$WORK/godwit.log")"
log "godwit pid $GODWIT_PID on $GW_PORT"

# --- the runs ----------------------------------------------------------------------------------
rps() { # rps TARGET TEST PIPELINE -> requests per second
    local target=$1 test=$2 p=$3 n=$REQUESTS
    [[ $p -gt 1 ]] && n=$((REQUESTS * 5))
    local args=(-t "$test" -n "$n" -c "$CLIENTS" -P "$p" -r "$KEYSPACE" -d 3 --csv -q)
    if [[ $target == direct ]]; then
        redis-benchmark --cluster -p "$SEED" "${args[@]}" 2>/dev/null
    else
        redis-benchmark -p "$GW_PORT" "${args[@]}" 2>/dev/null
    fi | python3 -c 'import csv,sys
rows=[r for r in csv.reader(sys.stdin) if len(r) > 1 and r[1][:1].isdigit()]
print(rows[-1][1] if rows else 0)'
}

RESULTS="$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for p in 1 16; do
        for test in set get; do
            for target in direct godwit; do
                echo -e "$target\t$test\t$p\t$(rps "$target" "$test" "$p")" >>"$RESULTS"
            done
        done
    done
    log "round $round done"
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
med = {}
for target, test, p, v in rows:
    med.setdefault((target, test, p), []).append(float(v))
print("| test | -P | direct cluster client req/s | godwit req/s | godwit / direct |")
print("|---|---|---|---|---|")
for p in ("1", "16"):
    for test in ("set", "get"):
        d = statistics.median(med[("direct", test, p)])
        g = statistics.median(med[("godwit", test, p)])
        print(f"| {test.upper()} | {p} | {d:,.0f} | {g:,.0f} | {g / d:.2f} |")
PY
