#!/usr/bin/env python3
"""Turns load-compare.sh's raw rows (TSV) into a Markdown report: medians per (test, -P,
target) over the rounds, and the ratios godwit/twemproxy and godwit/direct."""

import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

TARGETS = ["direct", "twemproxy", "godwit", "godwit-canary"]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def per_million(cpu_s, requests):
    return cpu_s / requests * 1e6 if requests else float("nan")


def fmt(x, digits=2):
    if x != x:  # NaN
        return "–"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a != a or b != b or b == 0:
        return float("nan")
    return a / b


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--rounds", default="?")
    ap.add_argument("--clients", default="?")
    ap.add_argument("--requests", default="?")
    ap.add_argument("--requests-pipelined", default="?")
    ap.add_argument("--godwit-workers", default="?")
    ap.add_argument("--note", default="")
    ap.add_argument("--rev", default="unknown")
    args = ap.parse_args()

    rows = defaultdict(list)
    with open(args.raw, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            key = (r["test"], int(r["pipeline"]), r["target"])
            n = int(r["requests"])
            rows[key].append(
                {
                    "rps": float(r["rps"]),
                    "p50": float(r["p50_ms"]),
                    "p99": float(r["p99_ms"]),
                    "proxy": per_million(float(r["proxy_cpu_s"]), n),
                    "redis": per_million(float(r["redis_cpu_s"]), n),
                }
            )

    med = {
        key: {m: median([x[m] for x in runs]) for m in ("rps", "p50", "p99", "proxy", "redis")}
        for key, runs in rows.items()
    }
    groups = sorted({(t, p) for (t, p, _) in med}, key=lambda g: (g[1], g[0] != "SET", g[0]))
    targets = [t for t in TARGETS if any((g[0], g[1], t) in med for g in groups)]

    out = []
    w = out.append
    load = os.getloadavg()
    w("# Load comparison: direct Redis vs twemproxy vs godwit")
    w("")
    w(
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, godwit `{args.rev}`, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average at the end "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}. "
        f"redis-benchmark: {args.clients} clients, {args.requests} requests per run at -P 1 and "
        f"{args.requests_pipelined} at -P 16, random keys; medians of {args.rounds} rounds, "
        f"targets alternating within each round. godwit worker_threads = {args.godwit_workers}."
    )
    w("")
    w(f"{tool_version(['redis-server', '--version'])}; {tool_version(['nutcracker', '--version'])}.")
    if args.note:
        w("")
        w(f"**Note:** {args.note}")
    w("")
    w("CPU columns are CPU-seconds (user+system, all threads) per million requests, read from")
    w("`/proc/PID/stat` before and after each run; the proxy column is empty for direct.")
    w("")
    w("| test | -P | target | req/s | p50 ms | p99 ms | proxy CPU s/M | redis CPU s/M |")
    w("|---|---:|---|---:|---:|---:|---:|---:|")
    for test, p in groups:
        for t in targets:
            m = med.get((test, p, t))
            if not m:
                continue
            proxy = "–" if t == "direct" else fmt(m["proxy"])
            w(
                f"| {test} | {p} | {t} | {fmt(m['rps'], 0)} | {fmt(m['p50'], 3)} | "
                f"{fmt(m['p99'], 3)} | {proxy} | {fmt(m['redis'])} |"
            )
    if "godwit" in targets:
        w("")
        w("Ratios (godwit / other; for req/s higher is better, for the rest lower is better):")
        w("")
        w(
            "| test | -P | req/s vs twemproxy | req/s vs direct | proxy CPU vs twemproxy | "
            "redis CPU vs twemproxy | redis CPU vs direct | p99 vs twemproxy |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for test, p in groups:
            g = med.get((test, p, "godwit"))
            t = med.get((test, p, "twemproxy"), {})
            d = med.get((test, p, "direct"), {})
            if not g:
                continue
            nan = float("nan")
            w(
                f"| {test} | {p} | {fmt(ratio(g['rps'], t.get('rps', nan)))}× | "
                f"{fmt(ratio(g['rps'], d.get('rps', nan)))}× | "
                f"{fmt(ratio(g['proxy'], t.get('proxy', nan)))}× | "
                f"{fmt(ratio(g['redis'], t.get('redis', nan)))}× | "
                f"{fmt(ratio(g['redis'], d.get('redis', nan)))}× | "
                f"{fmt(ratio(g['p99'], t.get('p99', nan)))}× |"
            )
    if "godwit-canary" in targets:
        w("")
        w(
            "Canary + dual write (read_percentage 0.05, every write to both Redis servers, "
            "old-authoritative) vs godwit passthrough in the same run:"
        )
        w("")
        w("| test | -P | req/s canary / passthrough | p99 canary / passthrough |")
        w("|---|---:|---:|---:|")
        for test, p in groups:
            c = med.get((test, p, "godwit-canary"))
            g = med.get((test, p, "godwit"))
            if c and g:
                w(f"| {test} | {p} | {fmt(ratio(c['rps'], g['rps']))}× | {fmt(ratio(c['p99'], g['p99']))}× |")
    w("")
    w("Each run, raw (req/s, p50, p99, CPU seconds): `benches/results/latest.tsv`.")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
