#!/usr/bin/python3
"""Turns the raw files bench/run.sh collected in a results directory into results.json,
summary.md and latency_cdf.png.

    report.py RESULTS_DIR

Reads (each optional, a missing one means that benchmark did not run):
  meta.json          machine, commit, parameters (written by bench/run.sh)
  tcp.tsv            bench/tcp/run.sh BENCH_OUT lines: bench mode round figures command
  iperf3.tsv         bench/lib/iperf3.sh lines: iperf3 mode round gbps command reason segs
  passthrough.tsv    mode round kernel_ns preload_ns command
  floor.tsv          reflect_test.sh REFLECT_OUT lines: run p50 p99 p99.9 min command
  fork.tsv           bench/fork/run.sh lines: bench mode round value unit command
  deploy.tsv         bench/deploy/run.sh lines, the same columns (modes kernel, bypass, latency)
  idle.tsv           bench/idle/run.sh lines, the same columns
  udp.tsv            bench/udp/run.sh BENCH_OUT lines: bench mode round figures command
  sockperf-udp-MODE-rN.csv(.gz)  the same samples for sockperf UDP
  sockperf-MODE-rN.csv(.gz)  sockperf --full-log samples (half-RTT latency, usec)
"""
import csv
import glob
import gzip
import json
import os
import statistics
import sys

D = sys.argv[1]
MODES = ("kernel", "busy", "bypass")
LABEL = {"kernel": "kernel blocking", "busy": "kernel busy-poll", "bypass": "bypass"}


def lines(name):
    p = os.path.join(D, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip()]


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def med(runs, i=0):
    """Median of figure i over the runs that gave numbers, else the first verdict."""
    vals = [r["values"][i] for r in runs if r["values"] is not None]
    if vals:
        return statistics.median(vals)
    return runs[0]["verdict"] if runs else None


def fmt(v, nd=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if nd == 0:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.{nd}f}"
    return "—"


meta = {}
if os.path.exists(os.path.join(D, "meta.json")):
    meta = json.load(open(os.path.join(D, "meta.json")))

results = {"machine": meta.get("machine"), "commit": meta.get("commit"),
           "parameters": meta.get("parameters"), "started": meta.get("started"),
           "benchmarks": {}}
B = results["benchmarks"]

# --- sockperf and redis (bench/tcp/run.sh) --------------------------------------------
tcp = lines("tcp.tsv") or []
sp = {m: [] for m in MODES}
rd = {}
for row in tcp:
    bench, mode, rnd, figs, cmd = (row + [""] * 5)[:5]
    parts = figs.split()
    vals = [num(x) for x in parts]
    run = {"round": int(rnd), "command": cmd}
    if parts and all(v is not None for v in vals):
        run["values"] = vals
        run["verdict"] = "ok"
    else:
        run["values"] = None
        run["verdict"] = figs or "failed"
    if bench == "sockperf":
        sp[mode].append(run)
    else:
        rd.setdefault(bench, {}).setdefault(mode, []).append(run)

if any(sp.values()):
    out = {"unit": "usec half-RTT", "what": "sockperf TCP ping-pong, 64 B", "modes": {}}
    for m in MODES:
        if not sp[m]:
            continue
        runs = [{"round": r["round"], "command": r["command"], "verdict": r["verdict"],
                 **({"p50": r["values"][0], "p99": r["values"][1], "p99.9": r["values"][2]}
                    if r["values"] else {})} for r in sp[m]]
        out["modes"][m] = {"median": {k: med(sp[m], i) for i, k in enumerate(("p50", "p99", "p99.9"))},
                           "runs": runs}
    B["sockperf"] = out

if rd:
    out = {"unit": "requests/s", "what": "redis-benchmark -c 50, SET and GET", "tests": {}}
    for bench, modes in sorted(rd.items()):
        for m, runs in modes.items():
            for i, t in enumerate(("SET", "GET")):
                key = f"{t} {bench.replace('redis-', '-')}"
                out["tests"].setdefault(key, {})[m] = {
                    "median": med(runs, i),
                    "runs": [{"round": r["round"], "command": r["command"], "verdict": r["verdict"],
                              "value": r["values"][i] if r["values"] else None} for r in runs]}
    B["redis"] = out

# --- iperf3 ---------------------------------------------------------------------------
ip3 = lines("iperf3.tsv")
if ip3 is not None:
    out = {"unit": "Gbit/s (receiver)", "what": "iperf3 one stream, port 5201", "modes": {}}
    for row in ip3:
        _, mode, rnd, fig, cmd, reason, segs = (row + [""] * 7)[:7]
        v = num(fig)
        out["modes"].setdefault(mode, {"runs": []})["runs"].append(
            {"round": int(rnd), "command": cmd, "value": v, "verdict": "ok" if v is not None else fig,
             "reason": reason or None, "kernel_tcp_segments_server_client": segs})
    for m, o in out["modes"].items():
        vals = [r["value"] for r in o["runs"] if r["value"] is not None]
        o["median"] = statistics.median(vals) if vals else o["runs"][0]["verdict"]
        o["reasons"] = sorted({r["reason"] for r in o["runs"] if r["reason"]})
    B["iperf3"] = out

# --- forking servers (bench/fork/run.sh) ----------------------------------------------
fk = lines("fork.tsv")
if fk is not None:
    out = {}
    for row in fk:
        bench, mode, rnd, fig, unit, cmd = (row + [""] * 6)[:6]
        v = num(fig)
        b = out.setdefault(bench, {"unit": unit, "modes": {}})
        b["modes"].setdefault(mode, {"runs": []})["runs"].append(
            {"round": int(rnd), "command": cmd, "value": v, "verdict": "ok" if v is not None else fig})
    for b in out.values():
        for o in b["modes"].values():
            vals = [r["value"] for r in o["runs"] if r["value"] is not None]
            o["median"] = statistics.median(vals) if vals else o["runs"][0]["verdict"]
    B["fork"] = {"what": "forking servers, server preloaded with default settings, kernel clients",
                 "benches": out}

# --- deployment (bench/deploy/run.sh, bench/idle/run.sh) -------------------------------
DEPLOY_MODES = ("kernel", "bypass", "latency", "base")
dp = (lines("deploy.tsv") or []) + (lines("idle.tsv") or [])
if dp:
    out = {}
    for row in dp:
        bench, mode, rnd, fig, unit, cmd = (row + [""] * 6)[:6]
        v = num(fig)
        b = out.setdefault(bench, {"unit": unit, "modes": {}})
        b["modes"].setdefault(mode, {"runs": []})["runs"].append(
            {"round": int(rnd), "command": cmd, "value": v, "verdict": "ok" if v is not None else fig})
    for b in out.values():
        for o in b["modes"].values():
            vals = [r["value"] for r in o["runs"] if r["value"] is not None]
            o["median"] = statistics.median(vals) if vals else o["runs"][0]["verdict"]
    B["deploy"] = {"what": "server preloaded (bypass: default settings; latency: "
                   "BYPASS_SPIN_USEC=-1), unmodified kernel clients; beside the kernel server",
                   "benches": out}

# --- passthrough ----------------------------------------------------------------------
pt = lines("passthrough.tsv")
if pt is not None:
    out = {"unit": "ns per round trip", "what": "kernel-only TCP ping-pong over loopback, "
           "without and with LD_PRELOAD (bench/passthrough/run.sh, inline mode)", "runs": []}
    for row in pt:
        mode, rnd, k, p, cmd = (row + [""] * 5)[:5]
        out["runs"].append({"mode": mode, "round": int(rnd), "kernel": num(k), "preload": num(p),
                            "command": cmd})
    ok = [r for r in out["runs"] if r["kernel"] is not None and r["preload"] is not None]
    if ok:
        out["median"] = {"kernel": statistics.median(r["kernel"] for r in ok),
                         "preload": statistics.median(r["preload"] for r in ok)}
        out["median"]["ratio"] = out["median"]["preload"] / out["median"]["kernel"]
    else:
        out["median"] = "failed"
    B["passthrough"] = out

# --- floor ----------------------------------------------------------------------------
fl = lines("floor.tsv")
if fl is not None:
    out = {"unit": "usec half-RTT", "what": "UDP 64 B ping-pong from a kernel client; server: "
           "byp-reflect (DPDK af_xdp, no TCP/IP stack) or a kernel UDP echo", "runs": {}}
    for row in fl:
        run, p50, p99, p999, mn, cmd = (row + [""] * 6)[:6]
        out["runs"][run] = {"p50": num(p50), "p99": num(p99), "p99.9": num(p999), "min": num(mn),
                            "command": cmd}
    if not out["runs"]:
        out["runs"] = "failed"
    B["floor"] = out

# --- UDP (bench/udp/run.sh) -------------------------------------------------------------
udp = lines("udp.tsv")
if udp is not None:
    out = {"sockperf": {"unit": "usec half-RTT", "what": "sockperf UDP ping-pong, 64 B", "modes": {}},
           "rate": {"unit": "datagrams/s", "what": "highest rate of the ladder received without "
                    "loss (64 B, epoll receiver, one socket per multicast group)", "groups": {}},
           "mc_latency": {"unit": "usec one-way", "what": "32 groups at 10,000/s, sender "
                          "CLOCK_REALTIME in the payload", "modes": {}}}
    for row in udp:
        bench, mode, rnd, figs, cmd = (row + [""] * 5)[:5]
        vals = [num(x) for x in figs.split()]
        ok = bool(vals) and all(v is not None for v in vals)
        run = {"round": int(rnd), "command": cmd, "verdict": "ok" if ok else (figs or "failed"),
               "values": vals if ok else None}
        if bench == "sockperf-udp":
            out["sockperf"]["modes"].setdefault(mode, []).append(run)
        elif bench.startswith("udp-rate-g"):
            out["rate"]["groups"].setdefault(bench[len("udp-rate-g"):], {}).setdefault(mode, []).append(run)
        elif bench == "mc-latency":
            out["mc_latency"]["modes"].setdefault(mode, []).append(run)
    for d in (out["sockperf"]["modes"], out["mc_latency"]["modes"]):
        for m, runs in d.items():
            keys = ("p50", "p99", "p99.9", "lost")
            d[m] = {"median": {k: med(runs, i) for i, k in enumerate(keys)
                               if any(r["values"] and len(r["values"]) > i for r in runs)},
                    "runs": runs}
    for g, modes in out["rate"]["groups"].items():
        for m, runs in modes.items():
            modes[m] = {"median": med(runs), "runs": runs}
    B["udp"] = out


def read_samples(prefix):
    """Every sockperf --full-log sample of the files PREFIX-MODE-r*.csv(.gz), per mode."""
    found = {}
    for m in MODES:
        xs = []
        for p in sorted(glob.glob(os.path.join(D, f"{prefix}-{m}-r*.csv*"))):
            op = gzip.open if p.endswith(".gz") else open
            with op(p, "rt") as f:
                data = False
                for l in f:
                    if l.startswith("packet,"):
                        data = True
                        continue
                    if data:
                        if l.startswith("---"):
                            break
                        v = num(l.rsplit(",", 1)[-1])
                        if v is not None:
                            xs.append(v)
        if xs:
            found[m] = sorted(xs)
    return found


udp_samples = read_samples("sockperf-udp")

# --- CDF ------------------------------------------------------------------------------
samples = {}
for m in MODES:
    xs = []
    for p in sorted(glob.glob(os.path.join(D, f"sockperf-{m}-r*.csv*"))):
        op = gzip.open if p.endswith(".gz") else open
        with op(p, "rt") as f:
            data = False
            for l in f:
                if l.startswith("packet,"):
                    data = True
                    continue
                if data:
                    if l.startswith("---"):
                        break
                    v = num(l.rsplit(",", 1)[-1])
                    if v is not None:
                        xs.append(v)
    if xs:
        samples[m] = sorted(xs)

plot = None
if samples or udp_samples:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = {"kernel": "#d62728", "busy": "#ff7f0e", "bypass": "#1f77b4"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    for m, xs in samples.items():
        x = np.array(xs)
        y = np.arange(1, len(x) + 1) / len(x)
        lab = f"{LABEL[m]} (p50 {np.percentile(x, 50):.1f} us, n={len(x):,})"
        a1.plot(x, y, color=colors[m], label=lab, lw=2)
        a2.plot(x, 1 - y + 1 / len(x), color=colors[m], label=LABEL[m], lw=2)
    for m, xs in udp_samples.items():   # UDP dashed beside TCP
        x = np.array(xs)
        y = np.arange(1, len(x) + 1) / len(x)
        lab = f"UDP {LABEL[m]} (p50 {np.percentile(x, 50):.1f} us, n={len(x):,})"
        a1.plot(x, y, color=colors[m], label=lab, lw=1.5, ls="--")
        a2.plot(x, 1 - y + 1 / len(x), color=colors[m], label="UDP " + LABEL[m], lw=1.5, ls="--")
    floor = (B.get("floor") or {}).get("runs")
    if isinstance(floor, dict) and floor.get("xdp-spin", {}).get("p50"):
        f50 = floor["xdp-spin"]["p50"]
        for a in (a1, a2):
            a.axvline(f50, color="gray", ls="--", lw=1)
        a1.text(f50, 0.02, f" raw-frame floor p50\n {f50:.1f} us", color="gray", fontsize=8)
    a1.set_xscale("log")
    a1.set_ylim(0, 1)
    a1.set_xlabel("half round-trip latency (us, log scale)")
    a1.set_ylabel("fraction of messages  (CDF)")
    a1.set_title("sockperf ping-pong 64 B: latency CDF (TCP solid, UDP dashed)")
    a1.grid(True, which="both", alpha=0.3)
    a1.legend(loc="lower right", fontsize=8)
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("half round-trip latency (us, log scale)")
    a2.set_ylabel("fraction of messages slower  (1 - CDF, log)")
    a2.set_title("the tail: p99 at 1e-2, p99.9 at 1e-3")
    for q in (1e-2, 1e-3):
        a2.axhline(q, color="gray", ls=":", lw=0.8)
    a2.grid(True, which="both", alpha=0.3)
    a2.legend(loc="lower left", fontsize=8)
    m = meta.get("machine") or {}
    fig.suptitle(f"veth between two namespaces, server CPU 0 / client CPU 1 — "
                 f"{m.get('nproc', '?')} CPUs, {m.get('model', '?')}, kernel {m.get('kernel', '?')}",
                 fontsize=9)
    fig.tight_layout()
    plot = os.path.join(D, "latency_cdf.png")
    fig.savefig(plot, dpi=110)
    results["latency_cdf"] = {"file": "latency_cdf.png",
                              "samples": {m: len(x) for m, x in samples.items()},
                              "udp_samples": {m: len(x) for m, x in udp_samples.items()},
                              "source": "sockperf pp --full-log, every round pooled"}

with open(os.path.join(D, "results.json"), "w") as f:
    json.dump(results, f, indent=1)

# --- summary.md -----------------------------------------------------------------------
P = meta.get("parameters") or {}
m = meta.get("machine") or {}
c = meta.get("commit") or {}
o = []
o.append(f"# bypass benchmark — {meta.get('started', '')}")
o.append("")
o.append(f"Machine: {m.get('nproc')} CPUs ({m.get('model')}), {m.get('memory')}, kernel "
         f"{m.get('kernel')}. Commit {c.get('head', '?')[:12]}{' (dirty)' if c.get('dirty') else ''}. "
         f"{P.get('mode', '')} run: {P.get('rounds')} round(s), medians; server CPU 0, client CPU 1; "
         f"veth between two namespaces; bypass = both ends under libbypass.so "
         f"(BYPASS_SPIN_USEC={P.get('spin_usec')}).")
o.append("")
o.append("| benchmark | kernel blocking | kernel busy-poll | bypass | ratio |")
o.append("|---|---|---|---|---|")
notes = []
if "sockperf" in B:
    s = B["sockperf"]["modes"]
    for k in ("p50", "p99", "p99.9"):
        kv = s.get("kernel", {}).get("median", {}).get(k)
        bv = s.get("busy", {}).get("median", {}).get(k)
        xv = s.get("bypass", {}).get("median", {}).get(k)
        o.append(f"| sockperf TCP 64 B half-RTT {k} (us) | {fmt(kv)} | {fmt(bv)} | {fmt(xv)} | "
                 f"{ratio(xv, kv)} vs blocking, {ratio(xv, bv)} vs busy |")
if "redis" in B:
    for t in ("SET -P1", "GET -P1", "SET -P16", "GET -P16"):
        d = B["redis"]["tests"].get(t, {})
        kv = d.get("kernel", {}).get("median")
        xv = d.get("bypass", {}).get("median")
        o.append(f"| redis-benchmark {t} (req/s) | {fmt(kv, 0)} | — | {fmt(xv, 0)} | {ratio(xv, kv)} |")
for m in MODES:
    if any(r["values"] is None for r in sp.get(m, [])):
        notes.append(f"sockperf {LABEL[m]}: " + ", ".join(
            f"round {r['round']} {r['verdict']}" for r in sp[m] if r["values"] is None) +
            " (details in logs/tcp.log)")
for bench, modes in sorted(rd.items()):
    for m, runs in modes.items():
        bad = [r for r in runs if r["values"] is None]
        if bad:
            notes.append(f"redis-benchmark {bench.replace('redis-', '-')} {m}: " +
                         ", ".join(f"round {r['round']} {r['verdict']}" for r in bad) +
                         " (details, e.g. a crash of redis-server or redis-benchmark under the "
                         "library, in logs/tcp.log)")
if "iperf3" in B:
    d = B["iperf3"]["modes"]
    kv = d.get("kernel", {}).get("median")
    xv = d.get("bypass", {}).get("median")
    o.append(f"| iperf3 one stream (Gbit/s) | {fmt(kv, 2)} | — | {fmt(xv, 2)} | {ratio(xv, kv)} |")
    for mode, dd in d.items():
        for r in dd.get("reasons", []):
            notes.append(f"iperf3 {mode}: {dd['median']}: {r}")
if "fork" in B:
    label = {"nginx": "nginx master + 2 workers, small file, wrk -c 50 (req/s)",
             "nginx-reuseport": "nginx master + 2 workers, reuseport, small file, wrk -c 50 (req/s)",
             "nginx-close": "nginx master + 2 workers, small file, a connection per request, wrk -c 50 (req/s)",
             "pgbench": "PostgreSQL pgbench -S -c 8 (tps)",
             "pgbench-connect": "PostgreSQL pgbench -S -C -c 8, a backend forked per transaction (tps)"}
    for bench, b in sorted(B["fork"]["benches"].items()):
        kv = b["modes"].get("kernel", {}).get("median")
        xv = b["modes"].get("bypass", {}).get("median")
        o.append(f"| {label.get(bench, bench)}, server preloaded (defaults) | {fmt(kv, 0)} | — | "
                 f"{fmt(xv, 0)} | {ratio(xv, kv)} |")
if "deploy" in B:
    label = {"redis-P1-SET": "redis-benchmark -c 50 -P1 SET (req/s)",
             "redis-P1-GET": "redis-benchmark -c 50 -P1 GET (req/s)",
             "redis-P16-SET": "redis-benchmark -c 50 -P16 SET (req/s)",
             "redis-P16-GET": "redis-benchmark -c 50 -P16 GET (req/s)",
             "redis-idle-GET": "redis-benchmark -c 50 -P1 GET, 10,000 idle connections beside (req/s)",
             "memcached-t1": "memcached -t 1, memcaslap -T 2 -c 64 (TPS)",
             "memcached-t4": "memcached -t 4, memcaslap -T 2 -c 64 (TPS)",
             "nginx-small": "nginx 1 worker, small file, wrk -c 50 (req/s)",
             "nginx-close": "nginx 1 worker, small file, a connection per request, wrk -c 50 (req/s)",
             "nginx-1m": "nginx 1 worker, 1 MB file, wrk -c 10 (req/s)",
             "iperf3-rx": "iperf3 one stream, kernel client -> server (Gbit/s)",
             "iperf3-tx": "iperf3 one stream, server -> kernel client, -R (Gbit/s)",
             "idle": "idle redis-server, 10 connections (CPU milliseconds per run, lower is better)",
             "idle-progress": "the same, its progress thread alone (CPU milliseconds per run)",
             "idle-nginx": "idle nginx, master + 2 workers (CPU milliseconds per run, lower is better)",
             "start": "a short program's start to exit: python3 bind, listen, close "
                      "(milliseconds, lower is better)"}
    order = list(label)
    benches = B["deploy"]["benches"]
    has_base = any("base" in b["modes"] for b in benches.values())
    dep = ["", "Deployment (bench/deploy/run.sh, bench/idle/run.sh): the server preloaded, its "
           "clients unmodified programs on the kernel's stack in the other namespace; bypass = "
           "default settings, latency = BYPASS_SPIN_USEC=-1. The table above has both ends "
           "under the library.", "",
           "| server, kernel clients | kernel | bypass (defaults) | ratio | bypass (latency) | ratio |"
           + (" base build (defaults) | ratio |" if has_base else ""),
           "|---|---|---|---|---|---|" + ("---|---|" if has_base else "")]
    for bench in sorted(benches, key=lambda b: order.index(b) if b in order else 99):
        md = benches[bench]["modes"]
        kv, xv, lv, bv = (md.get(m, {}).get("median") for m in DEPLOY_MODES)
        nd = 2 if bench.startswith("iperf3") or bench == "idle-progress" else \
            1 if bench in ("start", "idle-nginx") else 0
        dep.append(f"| {label.get(bench, bench)} | {fmt(kv, nd)} | {fmt(xv, nd)} | {ratio(xv, kv)} | "
                   f"{fmt(lv, nd)} | {ratio(lv, kv)} |" +
                   (f" {fmt(bv, nd)} | {ratio(bv, kv)} |" if has_base else ""))
if "passthrough" in B:
    d = B["passthrough"]["median"]
    if isinstance(d, dict):
        o.append(f"| passthrough: kernel-only loopback ping-pong, without / with the library "
                 f"(ns/round trip) | {fmt(d['kernel'])} | — | {fmt(d['preload'])} | "
                 f"{d['ratio']:.3f} (overhead {100 * (d['ratio'] - 1):+.1f} %) |")
    else:
        o.append("| passthrough (ns/round trip) | failed | — | failed | — |")
if "udp" in B:
    u = B["udp"]
    s = u["sockperf"]["modes"]
    for k in ("p50", "p99", "p99.9"):
        kv = s.get("kernel", {}).get("median", {}).get(k)
        bv = s.get("busy", {}).get("median", {}).get(k)
        xv = s.get("bypass", {}).get("median", {}).get(k)
        o.append(f"| sockperf UDP 64 B half-RTT {k} (us) | {fmt(kv)} | {fmt(bv)} | {fmt(xv)} | "
                 f"{ratio(xv, kv)} vs blocking, {ratio(xv, bv)} vs busy |")
    for k in ("p50", "p99", "p99.9"):
        pv = s.get("bypass-pmd", {}).get("median", {}).get(k)
        if pv is not None:
            o.append(f"| sockperf UDP 64 B half-RTT {k} (us), bypass on DPDK's af_xdp PMD (rx_ring = 0) "
                     f"| {fmt(s.get('kernel', {}).get('median', {}).get(k))} | "
                     f"{fmt(s.get('busy', {}).get('median', {}).get(k))} | {fmt(pv)} | "
                     f"{ratio(s.get('bypass', {}).get('median', {}).get(k), pv)} own socket vs PMD |")
    for k in ("p50", "p99", "p99.9"):
        rv = s.get("raw", {}).get("median", {}).get(k)
        xv = s.get("bypass", {}).get("median", {}).get(k)
        if rv is None:
            continue
        gap = f"bypass − floor {xv - rv:+.2f} us" if xv is not None else "—"
        o.append(f"| UDP 64 B half-RTT {k}, raw-frame floor: af_xdp at both ends, no stack (us) "
                 f"| — | — | {fmt(rv)} | {gap} |")
    for g, modes in sorted(u["rate"]["groups"].items(), key=lambda t: int(t[0])):
        kv = modes.get("kernel", {}).get("median")
        xv = modes.get("bypass", {}).get("median")
        o.append(f"| UDP receive rate without loss, {g} group(s) (datagrams/s) | {fmt(kv, 0)} | — | "
                 f"{fmt(xv, 0)} | {ratio(xv, kv)} |")
        pv = modes.get("bypass-pmd", {}).get("median")
        if "bypass-pmd" in modes:
            o.append(f"| UDP receive rate without loss, {g} group(s), on DPDK's af_xdp PMD "
                     f"(rx_ring = 0: 2,048 buffers) | {fmt(kv, 0)} | — | {fmt(pv, 0)} | {ratio(pv, kv)} |")
    s = u["mc_latency"]["modes"]
    for k in ("p50", "p99", "p99.9"):
        kv = s.get("kernel", {}).get("median", {}).get(k)
        xv = s.get("bypass", {}).get("median", {}).get(k)
        o.append(f"| multicast one-way latency {k} (us), 32 groups at 10k/s | {fmt(kv)} | — | "
                 f"{fmt(xv)} | {ratio(xv, kv)} |")
    for part, d in (("sockperf UDP", u["sockperf"]["modes"]), ("multicast latency", u["mc_latency"]["modes"])):
        for m, dd in d.items():
            bad = [r for r in dd["runs"] if r["values"] is None]
            if bad:
                notes.append(f"{part} {m}: " + ", ".join(f"round {r['round']} {r['verdict']}"
                                                         for r in bad) + " (logs/udp.log)")
if "floor" in B:
    f = B["floor"]["runs"]
    o.append("")
    o.append("Floor — how far the stack is from the path's limit (half-RTT, us). Raw frames: "
             "byp-reflect (DPDK af_xdp, no TCP/IP stack) answering a spinning kernel UDP client in "
             "the other namespace; bypass TCP: sockperf above, both ends under the library.")
    o.append("")
    o.append("| half-RTT (us) | raw-frame floor (af_xdp reflector) | kernel UDP echo, spinning | "
             "bypass TCP | bypass TCP − floor | bypass / floor |")
    o.append("|---|---|---|---|---|---|")
    if isinstance(f, dict):
        fx = f.get("xdp-spin", {})
        fk = f.get("kernel-spin", {})
        sm = (B.get("sockperf", {}).get("modes", {}).get("bypass", {}) or {}).get("median", {})
        for k in ("p50", "p99", "p99.9"):
            xv = sm.get(k)
            diff = (f"{xv - fx[k]:.1f}" if isinstance(xv, (int, float)) and fx.get(k) is not None
                    else "—")
            o.append(f"| {k} | {fmt(fx.get(k), 2)} | {fmt(fk.get(k), 2)} | {fmt(xv)} | {diff} | "
                     f"{ratio(xv, fx.get(k))} |")
    else:
        o.append("| p50 | failed | failed | — | — | — |")
if "deploy" in B:
    o.extend(dep)
o.append("")
if notes:
    o.append("Failures:")
    o.extend(f"- {n}" for n in notes)
    o.append("")
o.append("Noise: a 2-vCPU VM shared with other jobs; server and client each own one vCPU and the "
         "kernel's softirqs share them, so tails (p99, p99.9) and blocking figures (vCPU wake-up) "
         "move a lot between runs. The commands behind every figure are in results.json.")
if plot:
    o.append("")
    o.append("![latency CDF](latency_cdf.png)")
with open(os.path.join(D, "summary.md"), "w") as f:
    f.write("\n".join(o) + "\n")
