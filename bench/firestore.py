#!/usr/bin/env python3
"""Tooling for bench/firestore.sh (the Firestore benchmark): standard library only.

    firestore.py proxy --port P --upstream HOST:PORT --log FILE [--binary PATH]
        A counting, refusing HTTP proxy between Mediscope and the Firestore emulator (Mediscope's
        FIRESTORE_EMULATOR_HOST points at it). Every request is forwarded and logged as one JSON line:
        time, kind (commit, batchGet, runQuery, ...), the collections it touches, status, sizes, upstream
        and proxy time, and the pid (and parent pid) of the process that sent it, found from the
        connection's source port (/proc/net/tcp -> socket inode -> /proc/PID/fd). Signals:
        USR1 = outage (the port is closed: connections are refused), USR2 = heal (listen again).
        State changes are logged as {"event": ...} lines. Runs in the foreground until TERM/INT.
    firestore.py upload --url URL --token T --body FILE --boundary B --count N [--concurrency C]
                        [--interval S] --out FILE
        N uploads (POST /api/analyses with the fixed multipart body), C at a time, each worker pausing
        S seconds between its uploads; one JSON line per upload (start, ms, status, id).
    firestore.py requests --log FILE --since T --until T --status FILE --uploads N
        Requests the proxy logged between two times, grouped by sender (inference / io worker, the
        outbox delivery process, other) and kind, per upload. JSON on stdout.
    firestore.py verify --emulator HOST:PORT --project P --ids FILE...
        Reads the emulator directly: are the analyses in Firestore exactly the uploaded ids, once each,
        and is there exactly one analysis.create audit entry per id? JSON on stdout.
    firestore.py drain --log FILE --heal T
        From the proxy log: the first delivery commit after the heal, the last one, counts.
    firestore.py report --out DIR
        The "firestore" section of bench/RESULTS.md from what bench/firestore.sh left in DIR.
"""
import argparse
import json

from lib.emulator import run_verify
from lib.loadclient import run_upload
from lib.proxy import read_log, run_proxy
from lib.report import pct, read_jsonl, read_meta, wrk_result


# ---------------------------------------------------------------- analysis of the proxy log

def roles(status_path):
    s = json.load(open(status_path))
    master = s["masterPid"]
    by_pid = {}
    for name, pool in s["pools"].items():
        for w in pool["snapshot"]["workers"]:
            by_pid[w["pid"]] = name
    return master, by_pid


def role_of(entry, master, by_pid):
    pid = entry.get("pid")
    if pid in by_pid:
        return by_pid[pid] + " worker"
    if pid == master:
        return "master"
    if pid is not None and entry.get("ppid") == master:
        return "outbox delivery"      # the master's only child outside the pools (store = firestore)
    return "other" if pid is not None else "unknown"


def run_requests(args):
    master, by_pid = roles(args.status)
    groups = {}
    total = 0
    for e in read_log(args.log):
        if "event" in e or not (args.since <= e["t"] < args.until):
            continue
        total += 1
        role = role_of(e, master, by_pid)
        label = e["kind"] + ("[" + "+".join(e["coll"]) + "]" if e["coll"] else "")
        g = groups.setdefault(role, {})
        x = g.setdefault(label, {"n": 0, "non2xx": 0, "req_bytes": 0})
        x["n"] += 1
        x["req_bytes"] += e["req_bytes"]
        if not 200 <= e["status"] < 300:
            x["non2xx"] += 1
    n = max(args.uploads, 1)
    result = {"uploads": args.uploads, "seconds": round(args.until - args.since, 3), "total": total,
              "per_upload": round(total / n, 3), "by_role": {}}
    for role, g in sorted(groups.items()):
        cnt = sum(x["n"] for x in g.values())
        result["by_role"][role] = {"n": cnt, "per_upload": round(cnt / n, 3),
                                   "kinds": {k: {"n": x["n"], "per_upload": round(x["n"] / n, 3), "non2xx": x["non2xx"],
                                                 "kB_per_request": round(x["req_bytes"] / x["n"] / 1024, 1)}
                                             for k, x in sorted(g.items())}}
    print(json.dumps(result, indent=1))


def run_drain(args):
    commits = [e for e in read_log(args.log) if "event" not in e and e["t"] >= args.heal and e["kind"] == "commit"]
    ok = [e for e in commits if 200 <= e["status"] < 300]
    proxy_ms = sorted(e["proxy_ms"] for e in read_log(args.log) if "event" not in e)
    up_ms = sorted(e["upstream_ms"] for e in ok)
    med = lambda a: a[len(a) // 2] if a else None
    print(json.dumps({
        "first_commit_t": ok[0]["t"] if ok else None, "last_commit_t": ok[-1]["t"] if ok else None,
        "commits": len(commits), "commits_ok": len(ok),
        "commit_colls": {"+".join(k): sum(1 for e in ok if e["coll"] == list(k)) for k in {tuple(e["coll"]) for e in ok}},
        "commit_upstream_ms_median": med(up_ms), "proxy_ms_median": med(proxy_ms),
        "proxy_ms_p99": proxy_ms[min(len(proxy_ms) - 1, int(len(proxy_ms) * 0.99))] if proxy_ms else None,
        "expect100": sum(1 for e in commits if e.get("expect100")),
    }, indent=1))


# ---------------------------------------------------------------- the RESULTS.md section

def run_report(args):
    import statistics
    out = args.out
    meta = read_meta(out)
    runs, workers, n_out = int(meta["runs"]), int(meta["workers"]), int(meta["outage_uploads"])
    depth, heal, drain_s = int(meta["outage_depth"]), float(meta["heal_t"]), float(meta["drain_s"])

    def wrk(label):
        return wrk_result(f"{out}/{label}.txt")

    def jl(name):
        return read_jsonl(f"{out}/{name}")

    def js(name):
        return json.load(open(f"{out}/{name}"))

    med = statistics.median
    L = ["<!-- begin firestore -->", "## Firestore store vs SQLite (`bench/firestore.sh`)", "",
         "Written by `bench/firestore.sh` (`make bench-firestore`). Medians and ratios from this one invocation.", "",
         f"- date: {meta['date']}", f"- machine: {meta['machine']}",
         f"- command: `{meta['command']}` (niceness {meta['nice']}); {meta['versions']}, started in {meta['emulator_start_s']} s",
         f"- background load: all-core CPU busy over 3 s before the script started anything: {meta['busy_before']}%; load average before: "
         f"{meta['load_before']}, at the end: {meta['load_after']} (the machine is shared with other builds: figures may move)",
         f"- request: POST /api/analyses through nginx, the fixed multipart body of bench/server.sh ({meta['body_bytes']} bytes: `patient_id` + "
         "the 512x512 baseline JPEG), a clinician's API token (bench/stack-lib.sh make_token)",
         f"- stacks: fresh $VAR each, {workers} inference worker(s) at 1 torch thread; mediscope and nginx on core 0 (so is the Firestore "
         "stack's outbox delivery process, a child of the master); wrk, the emulator and the proxy on core 1; Firestore stacks: "
         "`MEDISCOPE_STORE=firestore`, `MEDISCOPE_FIRESTORE_PROJECT_ID`, `FIRESTORE_EMULATOR_HOST`, default 2 s read caches", ""]

    # 1. latency
    L += ["### 1. Upload latency through nginx: SQLite vs Firestore (emulator on loopback, no proxy)", "",
          f"Both stacks up at once, each warmed up (1 POST + 5 s of wrk); {runs} runs of {meta['duration']} s at {workers} connection(s) "
          "per store, alternating SQLite, Firestore, SQLite, ...; after each Firestore run the outbox is left to empty before the next run.", "",
          "| store | requests | not 201 | req/s (median) | p50 (median) | p99 (median) | each run: req/s / p50 ms / p99 ms |",
          "|---|---|---|---|---|---|---|"]
    agg = {}
    for s, name in (("sqlite", "SQLite (default)"), ("firestore", "Firestore (emulator, through the outbox)")):
        w = [wrk(f"{s}-run{r}") for r in range(1, runs + 1)]
        agg[s] = {k: med(x[k] for x in w) for k in ("rps", "p50_ms", "p99_ms")}
        req = int(sum(x["requests"] for x in w))
        non = int(sum(x["requests"] - x["s201"] for x in w))
        each = "; ".join(f"{x['rps']:.2f} / {x['p50_ms']:.0f} / {x['p99_ms']:.0f}" for x in w)
        L.append(f"| {name} | {req} | {non} | {agg[s]['rps']:.2f} | {agg[s]['p50_ms']:.1f} ms | {agg[s]['p99_ms']:.1f} ms | {each} |")
    f, q = agg["firestore"], agg["sqlite"]
    L += ["", f"- **Firestore / SQLite: p50 {f['p50_ms'] / q['p50_ms']:.3f}x ({(f['p50_ms'] / q['p50_ms'] - 1) * 100:+.1f}%), "
              f"p99 {f['p99_ms'] / q['p99_ms']:.3f}x, req/s {f['rps'] / q['rps']:.3f}x**"]
    fr = [dict(kv.split("=", 1) for kv in l.split()) for l in open(f"{out}/firestore-runs.txt") if l.strip()]
    L.append("- the outbox after each Firestore run (entries waiting when wrk stopped / delivered during the run / seconds until empty): "
             + "; ".join(f"{x['depth_at_end']} / {x['delivered_during']} / {x['catchup_s']} s" for x in fr))
    # Where the time goes: mean per upload of the server's own stage histograms over the measured runs.
    def sums(label):
        got = {}
        for line in open(f"{out}/metrics-{label}.txt"):
            for suffix in ("_sum", "_count"):
                for metric in ("mediscope_stage_seconds", "mediscope_queue_seconds"):
                    if line.startswith(metric + suffix):
                        key, value = line.rsplit(" ", 1)
                        labels = key[len(metric + suffix):].strip("{}").replace('"', "")
                        got.setdefault(labels, {})[suffix] = float(value)
        return got

    def means(store):
        a, b = sums(f"{store}-before"), sums(f"{store}-after")
        res = {}
        for k, v in b.items():
            n = v.get("_count", 0) - a.get(k, {}).get("_count", 0)
            if n > 0:
                res[k] = ((v["_sum"] - a.get(k, {}).get("_sum", 0)) / n * 1000, int(n))
        return res
    ms, mf = means("sqlite"), means("firestore")
    keys = [k for k in mf if k in ms and not k.startswith("pool=io")]
    order = lambda k: ("queue" in k or "pool=" in k, ["decode", "preprocess", "forward", "gradcam", "encode", "store"].index(
        k.split(",")[0].split("=")[1]) if k.startswith("stage=") and k.split(",")[0].split("=")[1] in
        ["decode", "preprocess", "forward", "gradcam", "encode", "store"] else 9, k)
    def name(k):
        return k.split(",")[0].replace("stage=", "").replace("pool=", "queue for the ") + (" pool" if k.startswith("pool=") else "")
    cells = [f"{name(k)} {ms[k][0]:.1f} / {mf[k][0]:.1f} ms" for k in sorted(keys, key=order)]
    L.append("- the server's own timers, mean per upload over the measured runs (SQLite / Firestore; `/api/metrics` histograms): " + "; ".join(cells))
    st = js("firestore-status.json")["outbox"]
    v = js("verify-latency.json")
    L.append(f"- the Firestore stack at the end: deliveries {st['deliveries']}, retries {st['retries']}, parked {st['parked']} "
             f"(ever {st['parkedTotal']}); in the emulator: {v['analyses_docs']} analyses, {v['audit_creates']} analysis.create audit entries")
    L.append(f"- nginx access log over each stack's life, status/upstream_status (warm-up included; 499 = in flight when wrk stopped): "
             f"SQLite {meta['sqlite_access']}; Firestore {meta['firestore_access']}; warnings and errors in the Firestore stack's log: {meta['firestore_log']}")
    L.append("")

    # 2. requests per upload
    L += ["### 2. Requests sent to Firestore per upload", "",
          "A third Firestore stack whose `FIRESTORE_EMULATOR_HOST` is a counting proxy (`bench/firestore.py proxy`, Python; Mediscope's libcurl "
          "client opens one connection per request). The proxy logs each request with the pid that opened the connection (source port -> "
          "/proc/net/tcp -> /proc/PID/fd), so requests split by sender: the inference worker, while handling the upload (API token and user "
          "lookups behind the 2 s caches; the token's `lastUsedAt` touch, at most once a minute), and the outbox delivery process (the record "
          "+ images commit, the audit entry commit; a readiness probe, `batchGet[analyses]`, every 5 s while idle). Each window runs from "
          "the first upload until the outbox is empty again.", ""]

    def per(r, role):
        return r["by_role"].get(role, {}).get("per_upload", 0.0)

    tables = {}
    for label, title in (("steady", f"Back to back ({workers} at a time)"),
                         ("isolated", f"Isolated (one upload every {meta['isolated_gap']} s: the 2 s read caches have expired)")):
        r = js(f"requests-{label}.json")
        tables[label] = r
        L += [f"{title}: {r['uploads']} uploads, {r['total']} requests in {r['seconds']:.1f} s = **{r['per_upload']:.2f} per upload**", "",
              "| sender | request [collections] | requests | per upload | not 2xx | KiB per request |", "|---|---|---|---|---|---|"]
        for role, g in r["by_role"].items():
            for k, x in g["kinds"].items():
                L.append(f"| {role} | `{k}` | {x['n']} | {x['per_upload']:.3f} | {x['non2xx']} | {x['kB_per_request']:.1f} |")
            L.append(f"| {role} | all | {g['n']} | **{g['per_upload']:.3f}** | | |")
        L.append("")
    s_, i_ = tables["steady"], tables["isolated"]
    us = jl("uploads-steady.jsonl")
    L.append(f"- sent while handling the upload (inference worker): **{per(s_, 'inference worker'):.2f}** per upload back to back, "
             f"**{per(i_, 'inference worker'):.2f}** isolated; sent by the delivery (outbox process): **{per(s_, 'outbox delivery'):.2f}** "
             f"back to back, **{per(i_, 'outbox delivery'):.2f}** isolated (idle probes included)")
    L.append(f"- upload latency through the proxy, back to back (Python client): p50 {pct([u['ms'] for u in us], 50):.0f} ms, "
             f"p99 {pct([u['ms'] for u in us], 99):.0f} ms")
    L.append("")

    # 3. outage and drain
    uo = jl("uploads-outage.jsonl")
    ok = sum(1 for u in uo if u["status"] == 201)
    d = js("drain.json")
    dr = js("status-drained.json")["outbox"]
    b_deliv, b_retries, b_parked = map(int, meta["before_outage"].split())
    vo = js("verify-outage.json")
    rd = js("requests-drain.json")
    L += [f"### 3. Outage of {n_out} uploads, then the drain", "",
          "The proxy closes its port (connections refused) while the uploads are sent; then it listens again and the status page "
          "(`/api/status` outbox depth) is polled every 50 ms until nothing waits; finally the emulator is read directly (runQuery).", ""]
    L.append(f"- during the outage: {n_out} uploads, {workers} at a time: **{ok} x 201**, upload p50 {pct([u['ms'] for u in uo], 50):.0f} ms, "
             f"p99 {pct([u['ms'] for u in uo], 99):.0f} ms, max {max(u['ms'] for u in uo):.0f} ms (back to back before the outage, same proxy: "
             f"p50 {pct([u['ms'] for u in us], 50):.0f} ms)")
    L.append(f"- the outbox after the uploads: **depth {depth}** ({depth / n_out:.2f} entries per upload), oldest entry {meta['outage_oldest_s']} s, "
             f"{int(meta['outage_retries']) - b_retries} delivery retries during the outage, status page: Firestore {meta['outage_firestore']}, "
             f"parked {meta['outage_parked']}")
    first, last = d["first_commit_t"], d["last_commit_t"]
    pure = (d["commits_ok"] - 1) / (last - first) if first and last and last > first else float("nan")
    L.append(f"- heal -> first delivered commit **{first - heal:.2f} s** (the head entry waits out its retry back-off); "
             f"heal -> empty outbox **{drain_s:.2f} s**")
    L.append(f"- **drain rate: {depth / drain_s:.1f} entries/s = {n_out / drain_s:.1f} records/s** from the heal; "
             f"first to last commit ({d['commits_ok']} commits in {last - first:.2f} s): **{pure:.1f} entries/s = "
             f"{pure * n_out / max(depth, 1):.1f} records/s** (one entry per commit, one at a time; emulator time per commit: median "
             f"{d['commit_upstream_ms_median']:.1f} ms; the proxy's own time per request: median {d['proxy_ms_median']:.1f} ms, "
             f"p99 {d['proxy_ms_p99']:.1f} ms)")
    L.append(f"- requests during the drain: {rd['total']} (" + ", ".join(f"commit[{k}] {x}" for k, x in sorted(d["commit_colls"].items()))
             + f"; not 2xx {d['commits'] - d['commits_ok']}); after it: deliveries +{dr['deliveries'] - b_deliv}, retries "
             f"{dr['retries'] - b_retries} since the outage began, parked {dr['parked']} ({dr['parkedTotal'] - b_parked} new)")
    L.append(f"- **exactly once: {'yes' if vo['exactly_once'] else 'NO'}**: the emulator holds {vo['analyses_docs']} analyses "
             f"({vo['analyses_distinct']} distinct) for the {vo['uploaded']} uploads this stack answered 201 (start-up POST included; "
             f"missing {vo['missing_n']}, extra {vo['extra_n']}); analysis.create audit entries: {vo['audit_creates']} (missing "
             f"{vo['audit_creates_missing_n']}, duplicated {vo['audit_creates_duplicated_n']})")
    L.append(f"- warnings and errors in this stack's log: {meta['proxied_log']}")
    L.append("<!-- end firestore -->")
    print("\n".join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("proxy")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--binary")
    p = sub.add_parser("upload")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--boundary", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--interval", type=float, default=0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("requests")
    p.add_argument("--log", required=True)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--until", type=float, required=True)
    p.add_argument("--status", required=True)
    p.add_argument("--uploads", type=int, required=True)
    p = sub.add_parser("drain")
    p.add_argument("--log", required=True)
    p.add_argument("--heal", type=float, required=True)
    p = sub.add_parser("verify")
    p.add_argument("--emulator", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--ids", nargs="+", required=True)
    p = sub.add_parser("report")
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    {"proxy": run_proxy, "upload": run_upload, "requests": run_requests, "drain": run_drain, "verify": run_verify,
     "report": run_report}[a.cmd](a)


if __name__ == "__main__":
    main()
