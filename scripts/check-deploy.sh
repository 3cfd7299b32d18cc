#!/usr/bin/env bash
# Validates deploy/ and the metrics exposition with the tools operators use (on demand, not in
# CI: it installs Debian's `prometheus` package for promtool, a ~20 MB download).
#
#   scripts/check-deploy.sh
#
# 1. promtool check rules, promtool test rules (alert unit tests), promtool check config
# 2. the Grafana dashboard: valid JSON, every PromQL expression parsed by promtool
# 3. systemd-analyze verify of the unit (ExecStart pointed at the built binary: verify insists
#    the executable exists) and its `systemd-analyze security` exposure score
# 4. Kubernetes manifests (single instance and fleet): YAML loads, cross-references (labels,
#    ports, probes, volumes, init container, ConfigMap, PVC) and each ConfigMap's proxy.toml
#    passes `godwit --check`; so does the image's default config
# 5. a live godwit in front of a redis-server: the Dockerfile's HEALTHCHECK command succeeds,
#    /readyz answers, and a /metrics scrape passes `promtool check metrics`
#
# No docker engine is needed or used: the image itself is not built here (deploy/README.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
cd "$ROOT"
DEPLOY=$ROOT/deploy
WORK=$(mktemp -d)
cleanup() {
    lib_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() { printf '  ok  %s\n' "$*"; }

# --- tools -----------------------------------------------------------------------------------
had_prometheus=$(dpkg-query -W -f='${db:Status-Status}' prometheus 2>/dev/null || true)
GODWIT_DEPS_EXTRA="prometheus ${GODWIT_DEPS_EXTRA:-}" bash scripts/install-deps.sh
if [[ $had_prometheus != installed ]] && command -v systemctl >/dev/null 2>&1; then
    # the package enables its own server for boot; we only want promtool
    systemctl disable prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null || die "promtool missing after installing prometheus"
command -v systemd-analyze >/dev/null || die "systemd-analyze missing (Debian package systemd)"
PY=python3
if ! $PY -c 'import yaml' 2>/dev/null; then
    GODWIT_DEPS_EXTRA="python3-yaml" bash scripts/install-deps.sh
    PY=/usr/bin/python3
    $PY -c 'import yaml' || die "no python3 with the yaml module"
fi
log "building godwit (debug)"
cargo build -q -p godwit
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/godwit

# --- 1. Prometheus ---------------------------------------------------------------------------
log "Prometheus rules and config"
promtool check rules "$DEPLOY/prometheus/godwit-rules.yml" >/dev/null
ok "promtool check rules deploy/prometheus/godwit-rules.yml"
(cd "$DEPLOY/prometheus" && promtool test rules godwit-rules.test.yml >/dev/null)
ok "promtool test rules deploy/prometheus/godwit-rules.test.yml"
promtool check config "$DEPLOY/prometheus/prometheus.yml" >/dev/null
ok "promtool check config deploy/prometheus/prometheus.yml"
if out=$(promtool check config "$DEPLOY/prometheus/prometheus-kubernetes.yml" 2>&1); then
    ok "promtool check config deploy/prometheus/prometheus-kubernetes.yml"
elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
    ok "prometheus-kubernetes.yml skipped: this promtool has no Kubernetes service discovery (Debian build)"
else
    die "prometheus-kubernetes.yml: $out"
fi

# --- 2. Grafana ------------------------------------------------------------------------------
log "Grafana dashboard"
$PY -m json.tool "$DEPLOY/grafana/godwit.json" >/dev/null
$PY - "$DEPLOY/grafana/godwit.json" "$WORK/dashboard-rules.yml" <<'PY'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs, ids, queried = [], set(), 0
def walk(panels):
    global queried
    for p in panels:
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        walk(p.get("panels", []))
        queried += bool(p.get("targets"))
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
walk(dash["panels"])
assert dash["uid"] and dash["title"], "uid and title"
assert exprs, "no queries"
# Grafana variables → values promtool can parse
sub = lambda e: e.replace("$__rate_interval", "1m").replace("$instance", ".*")
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(sub(e))}\n")
print(f"  ok  {len(exprs)} dashboard queries in {queried} panels")
PY
promtool check rules "$WORK/dashboard-rules.yml" >/dev/null
ok "every dashboard query parses (promtool)"

# --- 3. systemd ------------------------------------------------------------------------------
log "systemd unit"
sed "s#/usr/local/bin/godwit#$BIN#g" "$DEPLOY/systemd/godwit.service" >"$WORK/godwit.service"
systemd-analyze verify "$WORK/godwit.service"
ok "systemd-analyze verify deploy/systemd/godwit.service (ExecStart -> $BIN)"
exposure=$(systemd-analyze security --offline=yes "$WORK/godwit.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for godwit.service: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] && ok "systemd-analyze security: exposure $exposure (0 = most locked down, 10 = none)"

# --- 4. Kubernetes and configs ---------------------------------------------------------------
log "Kubernetes manifests and configs"
for variant in "" fleet; do
    dir="$DEPLOY/kubernetes${variant:+/$variant}"
    $PY - "$dir" "$WORK/configmap-proxy.toml" <<'PY'
import sys, yaml, pathlib
d = pathlib.Path(sys.argv[1])
docs, kust = {}, None
for f in sorted(d.glob("*.yaml")):
    for doc in yaml.safe_load_all(f.read_text()):
        if doc is None:
            continue
        if f.name == "kustomization.yaml":
            kust = doc
            continue
        for k in ("apiVersion", "kind", "metadata"):
            assert k in doc, f"{f.name}: no {k}"
        docs[(doc["kind"], doc["metadata"]["name"])] = doc
for r in kust["resources"]:
    assert (d / r).is_file(), f"kustomization: {r} missing"
dep = docs[("Deployment", "godwit")]
spec = dep["spec"]["template"]["spec"]
labels = dep["spec"]["template"]["metadata"]["labels"]
for k, v in dep["spec"]["selector"]["matchLabels"].items():
    assert labels.get(k) == v, "selector does not match the pod labels"
c = spec["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz"
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz"
for probe in ("readinessProbe", "livenessProbe"):
    assert c[probe]["httpGet"]["port"] in ports, f"{probe} port"
assert spec["securityContext"]["runAsNonRoot"] is True
vols = {v["name"]: v for v in spec["volumes"]}
for ctr in spec.get("initContainers", []) + spec["containers"]:
    for m in ctr["volumeMounts"]:
        assert m["name"] in vols, f"{ctr['name']}: volume {m['name']}"
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert "/etc/godwit" in mounts and "/var/lib/godwit" in mounts, "config and data mounts"
for v in vols.values():
    if "persistentVolumeClaim" in v:
        claim = v["persistentVolumeClaim"]["claimName"]
        assert ("PersistentVolumeClaim", claim) in docs, f"PVC {claim}"
cms = [v["configMap"]["name"] for v in vols.values() if "configMap" in v]
assert len(cms) == 1, "one ConfigMap volume"
config = docs[("ConfigMap", cms[0])]["data"]["proxy.toml"]
if "@POD_NAME@" in config:
    # rendered by an init container into the config volume
    init = spec["initContainers"][0]
    assert any(m["mountPath"] == "/etc/godwit" and m["name"] == mounts["/etc/godwit"]
               for m in init["volumeMounts"]), "the init container writes the config volume"
    assert "POD_NAME" in {e["name"] for e in init["env"]}
    config = config.replace("@POD_NAME@", "godwit-0")
elif vols[mounts["/etc/godwit"]].get("configMap") is None:
    raise AssertionError("the config volume is not the ConfigMap")
for (kind, name), doc in docs.items():
    if kind == "Service":
        for k, v in doc["spec"]["selector"].items():
            assert labels.get(k) == v, f"Service {name} selects no pod"
        for p in doc["spec"]["ports"]:
            assert p["targetPort"] in ports, f"Service {name}: targetPort {p['targetPort']}"
    if kind == "PodDisruptionBudget":
        for k, v in doc["spec"]["selector"]["matchLabels"].items():
            assert labels.get(k) == v, "PDB selects no pod"
# the config must fit the pod: data_dir on the volume, admin and interlay on the named ports
assert 'data_dir = "/var/lib/godwit"' in config
assert f'listen = "0.0.0.0:{ports["admin"]}"' in config
assert f'listen = "0.0.0.0:{ports["redis"]}"' in config
open(sys.argv[2], "w").write(config)
print(f"  ok  {d.name}/: {len(docs)} Kubernetes objects load and reference each other consistently")
PY
    "$BIN" --config "$WORK/configmap-proxy.toml" --check >/dev/null
    ok "the ConfigMap's proxy.toml (${variant:-single instance}) passes godwit --check"
done
"$BIN" --config "$DEPLOY/docker/proxy.toml" --check >/dev/null
ok "deploy/docker/proxy.toml passes godwit --check"
grep -q '^COPY deploy/docker/proxy.toml /etc/godwit/proxy.toml' "$DEPLOY/docker/Dockerfile"
grep -q '^USER 10001' "$DEPLOY/docker/Dockerfile"
ok "Dockerfile: default config copied, non-root user (the image is not built here: no docker)"

# --- 5. a live godwit ------------------------------------------------------------------------
log "live godwit: health check, /readyz, promtool check metrics"
REDIS_PORT=$(free_port)
start_redis "$WORK/redis" "$REDIS_PORT"
PORT=$(free_port)
ADMIN=$(free_port)
write_godwit_config "$WORK/godwit.toml" "$WORK/data" "$PORT" "$ADMIN" "redis://127.0.0.1:$REDIS_PORT"
start_godwit "$BIN" "$WORK/godwit.toml" "$PORT" "$WORK/godwit.log" ||
    die "godwit did not start: $(tail -5 "$WORK/godwit.log")"
redis-cli -p "$PORT" set check-deploy 1 >/dev/null
redis-cli -p "$PORT" get check-deploy >/dev/null
# the Dockerfile's HEALTHCHECK, with this run's admin port
hc=$(sed -n 's/.*CMD \["bash", "-c", "\(.*\)"\]$/\1/p' "$DEPLOY/docker/Dockerfile" |
    sed 's/\\\\/\\/g; s#/7070#/'"$ADMIN"'#')
[[ -n $hc ]] || die "no HEALTHCHECK command found in the Dockerfile"
bash -c "$hc" || die "the HEALTHCHECK command failed against a running godwit"
ok "the Dockerfile's HEALTHCHECK command succeeds against a running godwit"
curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN/readyz" | grep -q '"ready"'
ok "/readyz answers ready"
curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN/metrics" >"$WORK/scrape.txt"
promtool check metrics <"$WORK/scrape.txt"
ok "promtool check metrics: $(grep -c '^# TYPE godwit_' "$WORK/scrape.txt") godwit metric families"
log "all deploy checks passed"
