# Shared helpers for godwit's scripts (sourced, not run): free ports, a redis-server in a dir,
# godwit from a generated config, waiting for a port, and cleanup of what was started.
# Everything started is recorded in GODWIT_PIDS and killed by `lib_cleanup` (by pid only).

GODWIT_PIDS=()
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints a port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# wait_ping PORT [SECONDS] [PID]: waits until redis-cli PING on PORT answers PONG; fails early
# if PID exits.
wait_ping() {
    local port=$1 secs=${2:-15} pid=${3:-} i
    for ((i = 0; i < secs * 20; i++)); do
        if [[ $(redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning PING 2>/dev/null) == PONG ]]; then
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# start_redis DIR PORT [ARGS...]: starts redis-server (no persistence) in DIR on PORT, with
# extra redis-server ARGS; sets REDIS_PID.
start_redis() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode no --save "" \
        --appendonly no --daemonize no --dir "$dir" --logfile "$dir/redis.log" "$@" \
        </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    GODWIT_PIDS+=("$REDIS_PID")
    wait_ping "$port" 15 "$REDIS_PID" || die "redis-server on $port did not start: $(tail -5 "$dir/redis.log")"
}

# write_godwit_config FILE DATA_DIR LISTEN_PORT ADMIN_PORT ENDPOINT_URL [WORKERS]
write_godwit_config() {
    local file=$1 data=$2 port=$3 admin=$4 url=$5 workers=${6:-1}
    mkdir -p "$data"
    cat >"$file" <<TOML
data_dir = "$data"

[instance]
id = "godwit-script"
region = "local"

[admin]
listen = "127.0.0.1:$admin"

[runtime]
worker_threads = $workers

[limits]
max_clients = 10000
max_frame_bytes = 536870912
max_pipeline = 1024

[[endpoints]]
id = "old"
url = "$url"

[[interlays]]
id = "main"
endpoint = "old"
listen = "127.0.0.1:$port"
TOML
}

# start_godwit BIN CONFIG PORT LOG: starts godwit and waits for PING on PORT; sets GODWIT_PID.
# Returns 1 (without exiting) if it does not come up.
start_godwit() {
    local bin=$1 config=$2 port=$3 logfile=$4
    "$bin" --config "$config" </dev/null >"$logfile" 2>&1 &
    GODWIT_PID=$!
    GODWIT_PIDS+=("$GODWIT_PID")
    wait_ping "$port" 20 "$GODWIT_PID"
}

# godwit_bin: prints the godwit binary to use: $GODWIT_BIN, else target/release/godwit after a
# release build (unless NO_BUILD=1). Returns 1 if there is none.
godwit_bin() {
    if [[ -n ${GODWIT_BIN:-} ]]; then
        [[ -x $GODWIT_BIN ]] || return 1
        echo "$GODWIT_BIN"
        return 0
    fi
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    if [[ -z ${NO_BUILD:-} ]]; then
        log "building godwit (release)"
        (cd "$ROOT" && cargo build --release -p godwit >&2) || return 1
    fi
    [[ -x $target/release/godwit ]] || return 1
    echo "$target/release/godwit"
}

# Kills everything started through these helpers (by pid), newest first.
lib_cleanup() {
    local i pid
    for ((i = ${#GODWIT_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${GODWIT_PIDS[i]}
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${GODWIT_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    GODWIT_PIDS=()
}

# add_new_endpoint_and_token CONFIG NEW_URL: appends endpoint "new" (NEW_URL) and a fresh admin
# API token to a godwit config written by write_godwit_config; sets ADMIN_TOKEN.
add_new_endpoint_and_token() {
    local file=$1 url=$2
    ADMIN_TOKEN=script-$RANDOM$RANDOM$RANDOM
    local sha
    sha=$(printf '%s' "$ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)
    cat >>"$file" <<TOML

[[endpoints]]
id = "new"
url = "$url"

[[auth.tokens]]
name = "script"
org = "default"
role = "admin"
sha256 = "$sha"
TOML
}

# admin_api ADMIN_PORT METHOD PATH [JSON]: one admin API call with ADMIN_TOKEN; prints the body,
# fails on an HTTP error.
admin_api() {
    local port=$1 method=$2 path=$3 body=${4:-}
    curl -fsS -X "$method" "http://127.0.0.1:$port/api/v1/$path" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -H 'Content-Type: application/json' ${body:+-d "$body"}
}
