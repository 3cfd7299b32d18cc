#!/usr/bin/env bash
# Holds N (default 10000) concurrent client connections through godwit: each connects, PINGs,
# waits HOLD seconds, GETs a key and PINGs again; reports how many got every reply, and godwit's
# RSS and open file descriptors while they are held. Raises the fd limit (root or a high hard
# limit needed).
#
#   benches/many-conns.sh                # N=10000 HOLD=10
#   N=20000 HOLD=30 NO_BUILD=1 benches/many-conns.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"
N=${N:-10000}
HOLD=${HOLD:-10}
ulimit -n $((N * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "fd limit $(ulimit -n)"
WORK=$(mktemp -d -t godwit-conns-XXXXXX)
trap 'lib_cleanup; rm -rf "$WORK"' EXIT
BIN=$(godwit_bin) || die "no godwit binary"
RP=$(free_port)
start_redis "$WORK/redis" "$RP" --maxclients 20000
GP=$(free_port)
AP=$(free_port)
write_godwit_config "$WORK/godwit.toml" "$WORK/data" "$GP" "$AP" "redis://127.0.0.1:$RP" 1
sed -i "s/^max_clients = .*/max_clients = $((N + 100))/" "$WORK/godwit.toml"
start_godwit "$BIN" "$WORK/godwit.toml" "$GP" "$WORK/godwit.log" || die "godwit did not start"
redis-cli -p "$RP" set held ok >/dev/null
python3 - "$GP" "$N" "$HOLD" "$GODWIT_PID" <<'PY'
import asyncio, os, sys, time
port, n, hold, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

def sample():
    rss = next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(rss), fds

async def one(i, ready, go):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"PING\r\n"); await w.drain()
        if await r.readline() != b"+PONG\r\n": return False
        ready.append(i)
        await go.wait()
        w.write(b"*2\r\n$3\r\nGET\r\n$4\r\nheld\r\n*1\r\n$4\r\nPING\r\n"); await w.drain()
        ok = await r.readline() == b"$2\r\n" and await r.readline() == b"ok\r\n" and await r.readline() == b"+PONG\r\n"
        w.close()
        return ok
    except Exception as e:
        return False

async def main():
    ready, go = [], asyncio.Event()
    start = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i, ready, go)))
        if i % 500 == 499: await asyncio.sleep(0.05)
    while len(ready) < n and time.monotonic() - start < 60:
        await asyncio.sleep(0.2)
    rss, fds = sample()
    print(f"connected and answered: {len(ready)}/{n} in {time.monotonic()-start:.1f}s; godwit RSS {rss/1024:.0f} MiB, {fds} fds")
    await asyncio.sleep(hold)
    rss2, fds2 = sample()
    go.set()
    ok = sum(await asyncio.gather(*tasks))
    print(f"after holding {hold:.0f}s: {ok}/{n} got GET+PING right; godwit RSS {rss2/1024:.0f} MiB, {fds2} fds")
    await asyncio.sleep(1)
    rss3, fds3 = sample()
    print(f"after all closed: godwit RSS {rss3/1024:.0f} MiB, {fds3} fds")
    sys.exit(0 if ok == n else 1)

asyncio.run(main())
PY
