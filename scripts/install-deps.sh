#!/usr/bin/env bash
# Installs the Debian packages godwit's tests, benches and scripts need, only if missing.
#
# Idempotent and fast on a second run (a dpkg query, no apt calls). Non-interactive; run as
# root (or with sudo available). It never starts, stops or enables a system service: while it
# installs, a policy-rc.d that denies service starts is put in place (unless one already is),
# so a Redis already listening on 6379 -- ours or not -- is left alone, and none is added.
#
#   scripts/install-deps.sh            # packages for tests and scripts
#   GODWIT_DEPS_EXTRA="pkg ..." scripts/install-deps.sh   # plus more
set -euo pipefail

# redis-server: e2e tests spawn it; redis-tools: redis-cli, redis-benchmark;
# nutcracker: twemproxy, the load comparison's baseline; curl: quickstart hints;
# procps: ps/kill used by fixtures and scripts; python3-venv: the redis-py suite.
PACKAGES=(redis-server redis-tools nutcracker curl procps)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    PACKAGES+=(python3 python3-venv)
fi
# shellcheck disable=SC2206
PACKAGES+=(${GODWIT_DEPS_EXTRA:-})

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all present (${PACKAGES[*]})"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo for: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Deny service starts during the install (exit 101 = "action forbidden" for invoke-rc.d).
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
    "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY && chmod 755 $POLICY"
    trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "${missing[@]}"
}
# Update the lists once, first only if they are empty, else on a failed install.
if [[ -z $(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial || true) ]]; then
    "${SUDO[@]}" apt-get update -q
    apt_install
elif ! apt_install; then
    "${SUDO[@]}" apt-get update -q
    apt_install
fi

# Packages like nutcracker enable their service for boot when installed; undo that for the
# packages this run installed (tests start their own copies). A service that was already there
# (say a Redis on 6379 that is not ours) is never touched.
if command -v systemctl >/dev/null 2>&1; then
    for pkg in "${missing[@]}"; do
        case $pkg in
            redis-server | nutcracker)
                "${SUDO[@]}" systemctl disable "$pkg" >/dev/null 2>&1 || true ;;
        esac
    done
fi
echo "install-deps: done"
