#!/usr/bin/env bash
# Runs redis-py's own tests/test_commands.py (from its PyPI sdist) against a fresh redis-server
# directly, then through godwit in front of the same server, for RESP2 and RESP3, and writes the
# pass/fail/skip counts and the tests that fail only through godwit to docs/redis-py-results.md.
#
#   scripts/redis-py-suite.sh                  # builds target/release/godwit first
#   GODWIT_BIN=path NO_BUILD=1 scripts/redis-py-suite.sh
#   SKIP_GODWIT=1 scripts/redis-py-suite.sh    # the direct half only
#   PROTOCOLS=2 PYTEST_ARGS="-k hset" scripts/redis-py-suite.sh
#
# The sdist, its venv (pytest, packaging, redis-py itself) and the JUnit reports are cached in
# target/redis-py/ (REDIS_PY_CACHE). Exit status: 0 unless something could not run, or, with
# STRICT=1, if a test fails through godwit that passes directly.
#
# Flags, and why: `-m "not onlycluster and not redismod and not ssl and not replica"` is the
# standalone selection redis-py's CI uses (no cluster, modules, TLS or replica on 6380 here);
# the server runs with enable-module-command/enable-debug-command so MODULE/DEBUG tests can run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"

REDIS_PY_VERSION=${REDIS_PY_VERSION:-5.0.8}
PYTEST_VERSION=${PYTEST_VERSION:-7.4.4}
PROTOCOLS=${PROTOCOLS:-"2 3"}
CACHE=${REDIS_PY_CACHE:-$ROOT/target/redis-py}
RESULTS=${RESULTS:-$ROOT/docs/redis-py-results.md}
MARKS="not onlycluster and not redismod and not ssl and not replica"
PYTHON=${PYTHON:-python3}

for tool in redis-server redis-cli "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done

# --- redis-py sdist + venv (cached) ------------------------------------------------------------
SRC="$CACHE/redis-$REDIS_PY_VERSION"
VENV="$CACHE/venv-$REDIS_PY_VERSION"
mkdir -p "$CACHE"
if [[ ! -f $SRC/tests/test_commands.py ]]; then
    log "downloading redis==$REDIS_PY_VERSION sdist"
    "$PYTHON" -m pip download -q "redis==$REDIS_PY_VERSION" --no-binary :all: --no-deps -d "$CACHE"
    tar -xzf "$CACHE/redis-$REDIS_PY_VERSION.tar.gz" -C "$CACHE"
    # The sdist has no pytest.ini; register redis-py's markers as its repo does.
    cat >"$SRC/pytest.ini" <<'INI'
[pytest]
markers =
    redismod: redis module tests
    pipeline: pipeline tests
    onlycluster: only with cluster mode redis
    onlynoncluster: only with standalone redis
    ssl: ssl tests
    asyncio: async tests
    replica: replica tests
    experimental: experimental tests
    fixed_client: fixed client
INI
fi
if [[ ! -x $VENV/bin/pytest ]]; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q "pytest==$PYTEST_VERSION" packaging "$SRC"
fi

WORK=$(mktemp -d -t godwit-redispy-XXXXXX)
cleanup() {
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- servers -------------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
start_redis "$WORK/redis" "$REDIS_PORT" --enable-module-command yes --enable-debug-command yes
log "redis-server $(redis-server --version | awk '{print $3}') on $REDIS_PORT"
TARGETS=("direct:$REDIS_PORT")

GODWIT_NOTE=""
if [[ -n ${SKIP_GODWIT:-} ]]; then
    GODWIT_NOTE="godwit skipped (SKIP_GODWIT set)"
elif ! BIN=$(godwit_bin); then
    GODWIT_NOTE="godwit skipped: no binary (set GODWIT_BIN or fix \`cargo build --release -p godwit\`)"
else
    G_PORT=$(free_port)
    write_godwit_config "$WORK/godwit.toml" "$WORK/godwit-data" "$G_PORT" "$(free_port)" \
        "redis://127.0.0.1:$REDIS_PORT" 2
    if start_godwit "$BIN" "$WORK/godwit.toml" "$G_PORT" "$WORK/godwit.log"; then
        TARGETS+=("godwit:$G_PORT")
        log "godwit on $G_PORT"
    else
        GODWIT_NOTE="godwit skipped: $BIN did not answer PING ($(tail -3 "$WORK/godwit.log" | tr '\n' ' '))"
    fi
fi
[[ -n $GODWIT_NOTE ]] && log "$GODWIT_NOTE"

# --- runs ----------------------------------------------------------------------------------------
REPORTS=()
for proto in $PROTOCOLS; do
    for t in "${TARGETS[@]}"; do
        name=${t%%:*}
        port=${t##*:}
        xml="$CACHE/junit-$name-resp$proto.xml"
        log "pytest test_commands.py -> $name (RESP$proto)"
        rm -f "$xml"
        redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
        # shellcheck disable=SC2086
        (cd "$SRC" && timeout "${PYTEST_TIMEOUT:-900}" "$VENV/bin/python" -m pytest \
            tests/test_commands.py --redis-url="redis://127.0.0.1:$port" --protocol="$proto" \
            -m "$MARKS" -q -p no:cacheprovider --junitxml="$xml" ${PYTEST_ARGS:-}) \
            >"$CACHE/pytest-$name-resp$proto.log" 2>&1 || true
        tail -1 "$CACHE/pytest-$name-resp$proto.log" >&2
        [[ -s $xml ]] || die "no report from pytest; see $CACHE/pytest-$name-resp$proto.log"
        REPORTS+=("$name:$proto:$xml")
    done
done

mkdir -p "$(dirname "$RESULTS")"
status=0
"$PYTHON" - "$RESULTS" "$REDIS_PY_VERSION" "$(redis-server --version | awk '{print $3}')" \
    "$MARKS" "$GODWIT_NOTE" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "${REPORTS[@]}" <<'PY' || status=$?
import datetime, sys, xml.etree.ElementTree as ET
out, version, server, marks, note, rev, *reports = sys.argv[1:]
results = {}  # (target, proto) -> {test id: outcome}
for r in reports:
    target, proto, path = r.split(":", 2)
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = ("failed" if "failure" in kinds else "error" if "error" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        outcomes[tid] = outcome
    results[(target, proto)] = outcomes

lines = [
    "# redis-py `tests/test_commands.py`: direct vs through godwit",
    "",
    f"{datetime.date.today()}, godwit `{rev}`, redis-py {version} (PyPI sdist), "
    f"redis-server {server}. Generated by `scripts/redis-py-suite.sh`; selection `-m \"{marks}\"`.",
    "",
]
if note:
    lines += [f"**Note:** {note}", ""]
lines += ["| target | protocol | passed | failed | errors | skipped |", "|---|---|---:|---:|---:|---:|"]
for (target, proto), o in results.items():
    count = lambda k: sum(1 for v in o.values() if v == k)
    lines.append(f"| {target} | RESP{proto} | {count('passed')} | {count('failed')} | "
                 f"{count('error')} | {count('skipped')} |")
regressions = 0
for (target, proto), o in results.items():
    direct = results.get(("direct", proto), {})
    bad = sorted(t for t, v in o.items() if v in ("failed", "error"))
    if target == "direct":
        if bad:
            lines += ["", f"Failing directly (RESP{proto}; redis-py vs this server version): "
                      + ", ".join(f"`{t}`" for t in bad)]
        continue
    only = [t for t in bad if direct.get(t) == "passed"]
    regressions += len(only)
    lines += ["", f"Failing through {target} but passing directly (RESP{proto}): "
              + (", ".join(f"`{t}`" for t in only) if only else "none")]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
sys.exit(3 if regressions else 0)
PY
log "wrote $RESULTS"
if [[ $status -eq 3 && -n ${STRICT:-} ]]; then
    exit 1
fi
