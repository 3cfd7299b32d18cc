#!/usr/bin/env bash
# Soak: DURATION seconds (default 600) of mixed load (SET/GET/INCR/LPUSH/HSET/SADD, pipelined and
# not, 50 clients) through a godwit interlay held by a running canary migration with a scan copy
# (dual writes to a second redis-server), sampling godwit's RSS and open fds every 10 s. At the end:
# verify must report 0 differences, RSS must not keep growing (last sample within 20% of the
# first sample after warm-up) and fds must return to idle.
#
#   benches/soak.sh                         # 10 minutes
#   DURATION=120 NO_BUILD=1 benches/soak.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"
DURATION=${DURATION:-600}
WORK=$(mktemp -d -t godwit-soak-XXXXXX)
LOADER=
trap '[[ -n $LOADER ]] && kill $LOADER 2>/dev/null; lib_cleanup; rm -rf "$WORK"' EXIT
BIN=$(godwit_bin) || die "no godwit binary"
OLD=$(free_port); start_redis "$WORK/old" "$OLD"
NEW=$(free_port); start_redis "$WORK/new" "$NEW"
redis-cli -p "$OLD" debug populate 200000 soak 64 >/dev/null
GP=$(free_port); AP=$(free_port)
write_godwit_config "$WORK/godwit.toml" "$WORK/data" "$GP" "$AP" "redis://127.0.0.1:$OLD" 1
add_new_endpoint_and_token "$WORK/godwit.toml" "redis://127.0.0.1:$NEW"
start_godwit "$BIN" "$WORK/godwit.toml" "$GP" "$WORK/godwit.log" || die "godwit did not start"
api() { admin_api "$AP" "$@"; }
api POST migrations '{"id":"soak","strategy":{"type":"canary","read_percentage":0.25,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}},"data":{"type":"scan","replace":"replace"}}' >/dev/null
api POST migrations/soak/interlay/main '{"endpoint":"new"}' >/dev/null
api POST migrations/soak/test >/dev/null
api POST migrations/soak/migrate >/dev/null

sample() { # -> "rss_kib fds"
    echo "$(awk '/VmRSS/ { print $2 }' "/proc/$GODWIT_PID/status") $(ls "/proc/$GODWIT_PID/fd" | wc -l)"
}
(
    end=$((SECONDS + DURATION))
    while ((SECONDS < end)); do
        for p in 1 16; do
            redis-benchmark -p "$GP" -c 50 -n 100000 -P "$p" -r 300000 -t set,get,incr,lpush,hset,sadd -q >/dev/null 2>&1 || true
        done
    done
) &
LOADER=$!
log "soak for ${DURATION}s (canary 0.25 + dual writes + scan copy), sampling every 10 s"
printf 't_s\trss_kib\tfds\tphase\n' >"$WORK/samples.tsv"
start=$SECONDS
while kill -0 "$LOADER" 2>/dev/null; do
    sleep 10
    read -r rss fds < <(sample)
    phase=$(api GET migrations/soak/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["phase"])' 2>/dev/null || echo "?")
    printf '%s\t%s\t%s\t%s\n' "$((SECONDS - start))" "$rss" "$fds" "$phase" | tee -a "$WORK/samples.tsv" >&2
done
LOADER=
sleep 2
read -r rss_idle fds_idle < <(sample)
verify=$(api POST migrations/soak/verify '{}' | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d.get("differing", d))' 2>/dev/null || echo "?")
python3 - "$WORK/samples.tsv" "$rss_idle" "$fds_idle" "$verify" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
rss = [int(r[1]) for r in rows]
warm = rss[min(2, len(rss) - 1)]
print(f"samples: {len(rows)}; RSS first {rss[0]/1024:.0f} MiB, after warm-up {warm/1024:.0f} MiB, "
      f"max {max(rss)/1024:.0f} MiB, last {rss[-1]/1024:.0f} MiB; fds max {max(int(r[2]) for r in rows)}; "
      f"idle after load: RSS {int(sys.argv[2])/1024:.0f} MiB, {sys.argv[3]} fds; verify differences: {sys.argv[4]}")
ok = rss[-1] <= warm * 1.2 and int(sys.argv[3]) < 64
print("memory stable and no fd leak" if ok else "CHECK: memory grew or fds stayed open")
PY
