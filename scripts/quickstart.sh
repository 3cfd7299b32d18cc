#!/usr/bin/env bash
# Quickstart: installs deps, builds godwit (release), starts two local Redis servers ("old" and
# "new", prefer ports 6390/6391) with data under ./.quickstart/, writes ./.quickstart/proxy.toml
# (interlay "main" on 6380 -> old; admin on 127.0.0.1:7070; free ports if those are taken; a
# fresh superadmin API token whose sha256 goes into [[auth.tokens]], the token itself into
# ./.quickstart/admin-token) and runs godwit in the foreground. Ctrl-C stops godwit and both
# Redis servers.
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

# A new admin API token for every run: 32 random bytes as hex. The config keeps only its
# sha256 (docs/admin-api.md); the token itself is printed and kept in .quickstart/admin-token.
TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
TOKEN_SHA256=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
(umask 077 && printf '%s\n' "$TOKEN" >"$QS/admin-token")
ADMIN="http://127.0.0.1:$ADMIN_PORT"

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

[auth]
token_ttl_s = 900

[[auth.tokens]]
name = "quickstart"
org = "default"
role = "superadmin"
sha256 = "$TOKEN_SHA256"

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
    curl -s $ADMIN/healthz
    curl -s $ADMIN/metrics | head

  Admin API (docs/admin-api.md). This run's superadmin token (also in .quickstart/admin-token):
    export TOKEN=$TOKEN
    curl -s $ADMIN/api/v1/endpoints -H "Authorization: Bearer \$TOKEN"
  A canary migration of interlay "main" from "old" to "new":
    curl -s $ADMIN/api/v1/migrations -H "Content-Type: application/json" \\
      -H "Authorization: Bearer \$TOKEN" \\
      -d '{"id": "demo", "strategy": {"type": "canary", "read_percentage": 0.05}, "data": {"type": "scan", "replace": "none"}}'
    curl -s $ADMIN/api/v1/migrations/demo/interlay/main -H "Content-Type: application/json" \\
      -H "Authorization: Bearer \$TOKEN" -d '{"endpoint": "new"}'
    curl -s -X POST $ADMIN/api/v1/migrations/demo/test -H "Authorization: Bearer \$TOKEN"
    curl -s -X POST $ADMIN/api/v1/migrations/demo/migrate -H "Authorization: Bearer \$TOKEN"
    curl -s $ADMIN/api/v1/migrations/demo/status -H "Authorization: Bearer \$TOKEN"

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
    # The printed token works, no token is a 401, and the migration commands above succeed
    # (then the demo migration is rolled back and deleted, so the next run starts clean).
    api() {
        local out
        out=$(curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" "$@")
        printf '%s\n' "$out" >&2
        [[ $out == *'"status":"success"'* ]] || die "admin API call failed: $*"
    }
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/api/v1/endpoints") == 401 ]] ||
        die "the admin API answered without a token"
    json=(-H "Content-Type: application/json")
    api "$ADMIN/api/v1/endpoints"
    api "$ADMIN/api/v1/migrations" "${json[@]}" \
        -d '{"id": "demo", "strategy": {"type": "canary", "read_percentage": 0.05}, "data": {"type": "scan", "replace": "none"}}'
    api "$ADMIN/api/v1/migrations/demo/interlay/main" "${json[@]}" -d '{"endpoint": "new"}'
    api -X POST "$ADMIN/api/v1/migrations/demo/test"
    api -X POST "$ADMIN/api/v1/migrations/demo/migrate"
    api "$ADMIN/api/v1/migrations/demo/status"
    api -X POST "$ADMIN/api/v1/migrations/demo/rollback"
    api -X DELETE "$ADMIN/api/v1/migrations/demo"
    log "smoke test passed"
    exit 0
fi
wait "$GODWIT_PID"
