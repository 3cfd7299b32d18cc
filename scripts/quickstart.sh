#!/usr/bin/env bash
# Quickstart: installs deps, builds godwit (release), starts two local Redis servers ("old" and
# "new", prefer ports 6390/6391) with data under ./.quickstart/, writes ./.quickstart/proxy.toml
# (interlay "main" on 6380 -> old; admin on 127.0.0.1:7070; free ports if those are taken) and
# runs godwit in the foreground. Ctrl-C stops godwit and both Redis servers.
#
#   scripts/quickstart.sh
#   QUICKSTART_SMOKE=1 scripts/quickstart.sh   # start, try the commands below, stop
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

QS="$ROOT/.quickstart"

# pick_port PREFERRED: PREFERRED if free, else any free port.
pick_port() {
    if port_free "$1"; then echo "$1"; else free_port; fi
}

bash scripts/install-deps.sh
BIN=$(godwit_bin) || die "could not build godwit (cargo build --release -p godwit)"

cleanup() {
    log "stopping godwit and the Redis servers"
    lib_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$QS"
OLD_PORT=$(pick_port 6390)
start_redis "$QS/old" "$OLD_PORT"
NEW_PORT=$(pick_port 6391)
start_redis "$QS/new" "$NEW_PORT"
PROXY_PORT=$(pick_port 6380)
ADMIN_PORT=$(pick_port 7070)

cat >"$QS/proxy.toml" <<TOML
# Written by scripts/quickstart.sh; see proxy.toml at the repo root for every option.
data_dir = "$QS/data"

[instance]
id = "godwit-quickstart"
region = "local"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[runtime]
worker_threads = 2

[limits]
max_clients = 10000
max_frame_bytes = 536870912
max_pipeline = 1024

[[endpoints]]
id = "old"
url = "redis://127.0.0.1:$OLD_PORT"

[[endpoints]]
id = "new"
url = "redis://127.0.0.1:$NEW_PORT"

[[interlays]]
id = "main"
endpoint = "old"
listen = "127.0.0.1:$PROXY_PORT"
TOML
mkdir -p "$QS/data"

log "starting $BIN --config $QS/proxy.toml"
"$BIN" --config "$QS/proxy.toml" </dev/null &
GODWIT_PID=$!
GODWIT_PIDS+=("$GODWIT_PID")
wait_ping "$PROXY_PORT" 20 "$GODWIT_PID" || die "godwit did not answer on $PROXY_PORT"

cat <<TXT

  godwit is up. Redis "old" on $OLD_PORT, "new" on $NEW_PORT (data in .quickstart/).
  Interlay "main" (clients connect here, it serves from "old"): 127.0.0.1:$PROXY_PORT
  Admin API: http://127.0.0.1:$ADMIN_PORT      config: .quickstart/proxy.toml

  Try:
    redis-cli -p $PROXY_PORT set hello world
    redis-cli -p $PROXY_PORT get hello
    redis-cli -p $OLD_PORT get hello          # the same key, straight from "old"
    redis-benchmark -p $PROXY_PORT -q -t set,get -n 100000
    curl -s http://127.0.0.1:$ADMIN_PORT/healthz
    curl -s http://127.0.0.1:$ADMIN_PORT/metrics | head

  Ctrl-C stops godwit and both Redis servers.

TXT

if [[ -n ${QUICKSTART_SMOKE:-} ]]; then
    (
        set -x
        redis-cli -p "$PROXY_PORT" set hello world
        redis-cli -p "$PROXY_PORT" get hello
        [[ $(redis-cli -p "$OLD_PORT" get hello) == world ]]
        curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/healthz"
        echo
        curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" | head -5
    )
    log "smoke test passed"
    exit 0
fi
wait "$GODWIT_PID"
