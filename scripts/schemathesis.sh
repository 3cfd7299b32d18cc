#!/usr/bin/env bash
# Property-based API testing: schemathesis (PyPI, pinned) against /api/v1/openapi.json of a
# freshly started godwit binary with a superadmin API token. Checks: no 5xx on any generated
# request (not_a_server_error) and responses that match the document
# (response_schema_conformance). Not in CI (minutes, network for the first venv); results are
# recorded in docs/reliability.md.
#
#   scripts/schemathesis.sh                 # 50 examples per operation
#   MAX_EXAMPLES=200 scripts/schemathesis.sh
#   CHECKS=not_a_server_error scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=${SCHEMATHESIS_VERSION:-3.39.16}
VENV=${CARGO_TARGET_DIR:-$ROOT/target}/schemathesis-venv
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
CHECKS=${CHECKS:-not_a_server_error,response_schema_conformance}

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION" \
  || ! "$VENV/bin/pip" show hypothesis 2>/dev/null | grep -q "Version: ${HYPOTHESIS_VERSION:-6.115.0}$"; then
  python3 -m venv "$VENV"
  # hypothesis is pinned too: newer ones broke hypothesis-jsonschema ("'many' object has no attribute 'more'")
  "$VENV/bin/pip" install -q "schemathesis==$VERSION" "hypothesis==${HYPOTHESIS_VERSION:-6.115.0}"
fi
cargo build -q -p godwit
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/godwit

WORK=$(mktemp -d)
GODWIT_PID=
cleanup() {
  [ -n "$GODWIT_PID" ] && kill "$GODWIT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN="gwt_schemathesis_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/godwit.toml" <<TOML
data_dir = "$WORK/data"

[admin]
listen = "127.0.0.1:$PORT"

[auth]
jwt_secret = "schemathesis-run-secret-of-at-least-32-bytes"

[[auth.tokens]]
name = "schemathesis"
org = "default"
role = "superadmin"
sha256 = "$SHA"
TOML
"$BIN" --config "$WORK/godwit.toml" > "$WORK/godwit.log" 2>&1 &
GODWIT_PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

set +e
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --base-url "http://127.0.0.1:$PORT" \
  -H "Authorization: Bearer $TOKEN" \
  --checks "$CHECKS" \
  --hypothesis-max-examples "$MAX_EXAMPLES" \
  --hypothesis-suppress-health-check all \
  --no-color "$@"
RC=$?
set -e
if grep -q "panicked" "$WORK/godwit.log"; then
  echo "godwit panicked:"; grep -A5 panicked "$WORK/godwit.log"; RC=1
fi
kill -0 "$GODWIT_PID" 2>/dev/null || { echo "godwit died"; tail -20 "$WORK/godwit.log"; RC=1; }
exit $RC
