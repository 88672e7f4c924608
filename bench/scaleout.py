#!/usr/bin/env python3
"""Helper of bench/scaleout.sh (Debian's python3, standard library only).

  snap LAB OUT.json            every process's CPU time (utime+stime+cutime+cstime) with the network
                               namespace it runs in (LAB-NAME -> NAME, the root namespace -> root), and
                               /proc/stat per core
  record ...                   one measured run as a JSON line: wrk's RESULT line, the CPU used between
                               two snapshots per part (core 0, core 1, host a, host b, nginx, emulator,
                               wrk, other processes, kernel), and the run's slice of nginx's access log
  cpu SNAP0 SNAP1              cpu_between of two snapshots as JSON (no wrk)
  outbox-depth                 the "depth" of `mediscope outbox status` (JSON on stdin)
  logsum LOG                   "level event xN; ..." of a mediscope log's warning and error lines
  report OUTDIR                the RESULTS.md section (meta.txt, runs.jsonl, final.json in OUTDIR)

CPU accounting: a process alive at both snapshots counts its own delta plus the delta of its reaped
children; one started in between counts all of its time; one that ended in between counts nothing of
its own (its time shows in its parent's cutime once reaped). Time the kernel spends in interrupts and
softirqs (the bridge, veths, TCP) is charged to no process and counted as "kernel"; "other" is the rest
of the cores' busy time (see cpu_between).
"""
import argparse
import collections
import json
import os
import statistics
import sys

from lib.procs import cpu_between, snap
from lib.report import pct, read_jsonl, read_meta, wrk_result


# ---------------------------------------------------------------- nginx's access log

def access_slice(path, first, last, addrs):
    """Lines first+1..last (1-based) of the access log: POST /api/analyses by status, upstream host."""
    names = {ip: name for name, ip in addrs.items()}
    statuses, served, pairs = collections.Counter(), collections.Counter(), collections.Counter()
    rt, urt = [], []
    with open(path, errors="replace") as f:
        for i, line in enumerate(f, 1):
            if i <= first or i > last:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("path") != "/api/analyses" or e.get("method") != "POST":
                continue
            statuses[str(e["status"])] += 1
            pairs["%s/%s" % (e["status"], e.get("upstream_status") or "-")] += 1
            ups = [u.strip() for u in (e.get("upstream") or "").split(",") if u.strip()]
            if e["status"] == 201 and ups:
                served[names.get(ups[-1].rsplit(":", 1)[0], ups[-1])] += 1
            if e["status"] == 201:
                rt.append(float(e["request_time"]) * 1000)
                try:
                    urt.append(float(str(e.get("upstream_response_time")).split(",")[-1].strip()) * 1000)
                except ValueError:
                    pass
    return {"statuses": dict(statuses), "pairs": dict(pairs), "served": dict(served),
            "request_time_p50": pct(rt, 50), "request_time_p99": pct(rt, 99),
            "upstream_time_p50": pct(urt, 50), "upstream_time_p99": pct(urt, 99)}


def run_record(a):
    s0, s1 = json.load(open(a.snap0)), json.load(open(a.snap1))
    addrs = dict(kv.split("=", 1) for kv in a.addrs.split(","))
    rec = {"run": a.run, "phase": a.phase, "hosts": a.hosts, "conns": a.conns, "label": a.label,
           "wrk": wrk_result(a.wrk), "cpu": cpu_between(s0, s1, a.wrk_pid),
           "access": access_slice(a.access_log, a.first, a.last, addrs)}
    print(json.dumps(rec))


def run_logsum(a):
    c = collections.Counter()
    try:
        for line in open(a.log, errors="replace"):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("level") in ("warning", "error", "critical"):
                c["%s %s" % (e["level"], e.get("event"))] += 1
    except OSError:
        print("no log")
        return
    print("; ".join("%s x%d" % kv for kv in sorted(c.items())) or "none")


# ---------------------------------------------------------------- the RESULTS.md section

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def f(x, d=1):
    return "n/a" if x != x else "%.*f" % (d, x)


def run_report(a):
    out = a.outdir
    meta = read_meta(out)
    runs = read_jsonl(os.path.join(out, "runs.jsonl"))
    final = json.load(open(os.path.join(out, "final.json")))
    one = [r for r in runs if r["phase"] == "one"]
    two = [r for r in runs if r["phase"] == "two"]
    P = print

    def rps(r):
        return r["wrk"]["s201"] / (r["wrk"]["duration_us"] / 1e6)

    def summary(rs):
        return {"rps": med([rps(r) for r in rs]), "p50": med([r["wrk"]["p50_ms"] for r in rs]),
                "p99": med([r["wrk"]["p99_ms"] for r in rs]),
                "rt50": med([r["access"]["request_time_p50"] for r in rs]),
                "rt99": med([r["access"]["request_time_p99"] for r in rs]),
                "up50": med([r["access"]["upstream_time_p50"] for r in rs])}

    s1, s2 = summary(one), summary(two)
    ratio = s2["rps"] / s1["rps"] if s1["rps"] else float("nan")
    # A run during which processes outside the lab used more than DISTURBED cores.
    DISTURBED = float(meta.get("disturbed", "0.10"))

    def disturbed(r):
        return r["cpu"]["parts"]["other"] > DISTURBED
    bad = [r for r in runs if disturbed(r)]

    P("<!-- begin scaleout -->")
    P("## Scale-out: one application host vs two behind one nginx (`bench/scaleout.sh`)")
    P()
    P("Written by `bench/scaleout.sh` (`make bench-scaleout`). Medians and ratios from this one invocation.")
    P()
    P(f"- date: {meta['date']}")
    P(f"- machine: {meta['machine']}")
    P(f"- commit: {meta['commit']}; binary {meta['binary']}")
    P(f"- command: `{meta['command']}` (niceness {meta['nice']}); {meta['versions']}, started in {meta['emulator_start_s']} s")
    P(f"- background load: all-core CPU busy over 3 s before the script started anything: {meta['busy_before']}%; "
      f"load average before: {meta['load_before']}, at the end: {meta['load_after']}; CPU of processes outside the lab "
      f"during the measured windows (median per run): {f(med([r['cpu']['parts']['other'] for r in runs]), 2)} cores "
      f"(max {f(max(r['cpu']['parts']['other'] for r in runs), 2)})")
    P(f"- hosts: network namespaces on one bridge (`Tests/Support/netns-lab.sh`), {meta['lab']}: "
      f"**lb** ({meta['nginx_version']}, `nginx/local.conf.template` rendered by `deploy/render-nginx.sh` with "
      f"`UPSTREAM_HOSTS`, default `UPSTREAM_INFERENCE_MAX_CONNS` 5, 1 nginx worker), **a** and **b** (`mediscope serve`, "
      f"`MEDISCOPE_STORE=firestore`, pools on `tcp:ADDRESS:9000/9001` with `allowed_clients` = the lb's address, "
      f"1 inference worker at 1 torch thread, 2 io workers, outbox delivery and report processes; the whole host "
      f"`taskset -c 0` (a) or `-c 1` (b)), **fs** (the Firestore emulator: the store both hosts share); "
      f"wrk in the root namespace. nginx, the emulator and wrk are not pinned: they share the two cores with the hosts")
    P(f"- request: POST /api/analyses through the lb, the fixed multipart body of bench/server.sh ({meta['body_bytes']} bytes: "
      f"`patient_id` + the 512x512 baseline JPEG), a clinician's API token; the root namespace's address is in "
      f"`UPLOAD_RATE_EXEMPT` (no 30/min upload limit for the load generator)")
    P(f"- load: wrk -s bench/post.lua with **{meta['conns_per_host']} connection(s) per serving host** "
      f"({'one upload running and one waiting on each host: the worker never waits for work' if meta['conns_per_host'] == '2' else 'see the command'}; "
      f"below nginx's max_conns 5 per host, so no 503 is expected), i.e. {one[0]['conns'] if one else '?'} connections with one host, "
      f"{two[0]['conns'] if two else '?'} with two; warm-up: 1 POST per host, then {meta['warmup']} s of wrk on both hosts; "
      f"{meta['runs']} runs of {meta['duration']} s per phase in the order {meta['order']} (the one-host phase "
      f"alternates host a and host b; the idle host's upstream entry is `=down` and nginx is reloaded between phases); "
      f"after each run both outboxes are left to empty")
    P()
    P("| phase | serving hosts | connections | uploads/s (median) | p50 (median) | p99 (median) | each run: uploads/s / p50 ms / p99 ms [host] |")
    P("|---|---|---|---|---|---|---|")
    for name, rs, s in (("one host", one, s1), ("two hosts", two, s2)):
        each = "; ".join("%.2f / %.0f / %.0f [%s]%s" % (rps(r), r["wrk"]["p50_ms"], r["wrk"]["p99_ms"], r["hosts"],
                                                        "*" if disturbed(r) else "") for r in rs)
        hosts = "a (core 0) or b (core 1)" if name == "one host" else "a (core 0) + b (core 1)"
        P(f"| {name} | {hosts} | {rs[0]['conns'] if rs else '?'} | {f(s['rps'], 2)} | {f(s['p50'], 0)} ms | {f(s['p99'], 0)} ms | {each} |")
    P()
    aim = "met" if ratio >= 1.9 else "not met"
    P(f"- **two hosts / one host: {f(ratio, 3)}x uploads/s** (aim: 1.9x or more) - {aim}; p50 {f(s2['p50'] / s1['p50'], 3)}x, "
      f"p99 {f(s2['p99'] / s1['p99'], 3)}x (same connections per host, so the latency includes the same queue: one upload waiting "
      f"behind the one running)")
    P(f"- uploads/s counts 201s only (wrk's requests / duration); wrk's latency covers every response. nginx's request_time for the 201s, "
      f"p50 / p99 (medians of runs): one host {f(s1['rt50'], 0)} / {f(s1['rt99'], 0)} ms, two hosts {f(s2['rt50'], 0)} / {f(s2['rt99'], 0)} ms; "
      f"time from nginx connecting to the host to its answer (upstream_response_time, incl. the wait in the pool's backlog) p50: "
      f"{f(s1['up50'], 0)} / {f(s2['up50'], 0)} ms")
    dpath = os.path.join(out, "disturbed.jsonl")
    redone = read_jsonl(dpath) if os.path.exists(dpath) else []
    if redone:
        P(f"- **{len(redone)} run(s) measured again** because processes outside the lab used more than {DISTURBED:.2f} cores during "
          f"them (at most {meta.get('retries')} repeats per invocation, after waiting until they used under {meta.get('quiet')} cores: "
          f"{meta.get('quiet_waited')} s of at most {meta.get('quiet_budget')} s): "
          + "; ".join(f"{r['label']} ({r['cpu']['parts']['other']:.2f} cores: "
                      + ", ".join(f"{n} {v:.2f}" for n, v in r["cpu"].get("other_top", [])[:2]) + ")" for r in redone)
          + "; kept in bench/out/scaleout/disturbed.jsonl, left out of the figures")
    if bad:
        c1 = [r for r in one if not disturbed(r)]
        c2 = [r for r in two if not disturbed(r)]
        clean = ""
        if c1 and c2:
            u1, u2 = summary(c1), summary(c2)
            clean = (f"; the undisturbed runs alone ({len(c1)} one-host, {len(c2)} two-host): {f(u1['rps'], 2)} and {f(u2['rps'], 2)} "
                     f"uploads/s = **{f(u2['rps'] / u1['rps'], 3)}x**, p50 {f(u1['p50'], 0)} / {f(u2['p50'], 0)} ms, "
                     f"p99 {f(u1['p99'], 0)} / {f(u2['p99'], 0)} ms")
        P(f"- **{len(bad)} of {len(runs)} runs were disturbed** (marked *: processes outside the lab used more than "
          f"{DISTURBED:.2f} cores, see \"other\" below){clean}")
    else:
        P(f"- no run was disturbed: processes outside the lab stayed under {DISTURBED:.2f} cores in every run")
    tot = collections.Counter()
    tot_pairs = {"one": collections.Counter(), "two": collections.Counter()}
    served2 = collections.Counter()
    errs = collections.Counter()
    for r in runs:
        for k in ("s201", "s503", "s429", "s5xx_other", "s_other"):
            tot[(r["phase"], k)] += int(r["wrk"][k])
        for k in ("err_connect", "err_read", "err_write", "err_timeout"):
            errs[(r["phase"], k)] += int(r["wrk"][k])
        tot_pairs[r["phase"]].update(r["access"]["pairs"])
        if r["phase"] == "two":
            served2.update(r["access"]["served"])
    for ph, name in (("one", "one host"), ("two", "two hosts")):
        P(f"- statuses, {name} (all runs, wrk): 201: {tot[(ph, 's201')]}, **503: {tot[(ph, 's503')]}**, 429: {tot[(ph, 's429')]}, "
          f"other 5xx: {tot[(ph, 's5xx_other')]}, other: {tot[(ph, 's_other')]}; socket errors connect/read/write/timeout "
          f"{errs[(ph, 'err_connect')]}/{errs[(ph, 'err_read')]}/{errs[(ph, 'err_write')]}/{errs[(ph, 'err_timeout')]}; "
          f"nginx access log status/upstream_status: {' '.join('%s=%d' % kv for kv in sorted(tot_pairs[ph].items()))}")
    n2 = sum(served2.values())
    P(f"- served by (access log `upstream` of the 201s), two-host runs: "
      + ", ".join(f"host {h} {served2[h]} ({100 * served2[h] / n2:.1f}%)" for h in sorted(served2)) if n2 else "- served by: n/a")
    P(f"- one-host runs: " + "; ".join(f"run {r['run']} [{r['hosts']}]: " + ", ".join(f"{h} {n}" for h, n in sorted(r['access']['served'].items()))
                                          for r in one) + " (201s by host; the other host is `=down`)")
    P()

    # ---------------------------------------------------------------- CPU
    idle = None
    if os.path.exists(os.path.join(out, "idle.json")):
        idle = json.load(open(os.path.join(out, "idle.json")))
    P("### Where the CPU went (in cores: 2.00 = both cores busy; medians of the runs)")
    P()
    P("Each run is sampled from 1 s after wrk starts to 1 s before it stops: CPU time per process from /proc/PID/stat "
      "(own + reaped children), grouped by network namespace (host a, host b, nginx = lb, emulator = fs; wrk by pid), "
      "per core from /proc/stat. kernel = kernel threads + the cores' irq/softirq time (the bridge, veths and TCP; "
      "charged to no process). other = the rest of the busy time: processes outside the lab (other users of the "
      "machine, this script's own sampling).")
    P()
    P("| phase | core 0 busy | core 1 busy | host a | host b | nginx | emulator | wrk | kernel | other | idle | steal |")
    P("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def row(name, parts, c0, c1):
        P(f"| {name} | {f(c0, 2)} | {f(c1, 2)} | {f(parts('a'), 2)} | {f(parts('b'), 2)} | {f(parts('lb'), 3)} | "
          f"{f(parts('fs'), 3)} | {f(parts('wrk'), 3)} | {f(parts('kernel'), 3)} | {f(parts('other'), 3)} | "
          f"{f(parts('idle'), 2)} | {f(parts('steal'), 3)} |")

    def core(rs, c):
        return med([r["cpu"]["cores"].get(c, {}).get("busy", float("nan")) for r in rs])
    for name, rs in (("one host (a)", [r for r in one if r["hosts"] == "a"]), ("one host (b)", [r for r in one if r["hosts"] == "b"]),
                     ("two hosts", two)):
        if rs:
            row(name, lambda k, rs=rs: med([r["cpu"]["parts"][k] for r in rs]), core(rs, "cpu0"), core(rs, "cpu1"))
    if idle:
        row(f"no load ({idle['wall']:.0f} s after the warm-up)", lambda k: idle["parts"][k],
            idle["cores"]["cpu0"]["busy"], idle["cores"]["cpu1"]["busy"])
    P()
    others = collections.Counter()
    for r in runs:
        for name, v in r["cpu"].get("other_top", []):
            others[name] += v / len(runs)
    if others:
        P("- other, by process name (own time, mean of the runs): " + ", ".join(f"{n} {v:.3f}" for n, v in others.most_common(4)))

    def host_cores(r):
        return r["cpu"]["parts"]["a"] + r["cpu"]["parts"]["b"] if r["phase"] == "two" else r["cpu"]["parts"][r["hosts"]]

    def worker_cores(r):
        hs = ("a", "b") if r["phase"] == "two" else (r["hosts"],)
        return sum(r["cpu"]["hosts"][h]["busiest_child"] for h in hs)

    def rig(r):  # what the test rig needs besides the hosts
        p = r["cpu"]["parts"]
        return p["lb"] + p["fs"] + p["wrk"] + p["kernel"]

    def per_upload(rs, fn):
        return med([fn(r) / rps(r) * 1000 for r in rs])
    cpu1, cpu2 = per_upload(one, host_cores), per_upload(two, host_cores)
    w1, w2 = per_upload(one, worker_cores), per_upload(two, worker_cores)
    part = lambda k: (lambda r: r["cpu"]["parts"][k])
    hc1, hc2 = med([host_cores(r) for r in one]), med([host_cores(r) for r in two])
    rig1, rig2 = med([rig(r) for r in one]), med([rig(r) for r in two])
    oth1, oth2 = med([r["cpu"]["parts"]["other"] for r in one]), med([r["cpu"]["parts"]["other"] for r in two])
    P(f"- CPU per upload (cores / uploads/s), one host / two hosts: **serving host(s) {f(cpu1, 1)} / {f(cpu2, 1)} ms** "
      f"(the inference worker {f(w1, 1)} / {f(w2, 1)} ms; the rest is the master, io workers, outbox delivery and report drafts); "
      f"nginx {f(per_upload(one, part('lb')), 1)} / {f(per_upload(two, part('lb')), 1)} ms; "
      f"**emulator {f(per_upload(one, part('fs')), 1)} / {f(per_upload(two, part('fs')), 1)} ms**; "
      f"wrk {f(per_upload(one, part('wrk')), 1)} / {f(per_upload(two, part('wrk')), 1)} ms; "
      f"kernel {f(per_upload(one, part('kernel')), 1)} / {f(per_upload(two, part('kernel')), 1)} ms")
    if two and "emulator_threads" in two[0]["cpu"]:
        et = {k: med([r["cpu"]["emulator_threads"][k] for r in two]) for k in ("gc", "jit", "work")}
        tot_et = sum(et.values()) or float("nan")
        P(f"- the emulator's JVM with two hosts, by thread: garbage collection {f(et['gc'], 3)}, JIT compilers {f(et['jit'], 3)}, "
          f"the rest (requests, the JVM's own) {f(et['work'], 3)} cores ({f(100 * et['gc'] / tot_et, 0)}% / {f(100 * et['jit'] / tot_et, 0)}% / "
          f"{f(100 * et['work'] / tot_et, 0)}%): the JIT share is the JVM still compiling the emulator's code after the warm-up, a cost "
          f"of the stand-in; the rest is the emulator's work: two commits per upload (the record with its images, ~100 KiB, and the "
          f"audit entry) plus the hosts' token and user reads")
    if hc1 == hc1 and hc2 == hc2 and cpu1 == cpu1 and cpu2 == cpu2:
        P(f"- the serving host(s) got **{f(hc1, 2)} cores with one host and {f(hc2, 2)} with two ({f(hc2 / hc1, 3)}x)**: the test rig "
          f"(nginx + emulator + wrk + kernel) took {f(rig1, 2)} / {f(rig2, 2)} cores and other processes {f(oth1, 2)} / {f(oth2, 2)}, "
          f"all on the same two cores (with one host the rig runs mostly on the idle host's core; with two it can only take from the hosts); "
          f"the largest share with two hosts: "
          + ", ".join(f"{n} {f(v, 2)}" for n, v in sorted(((n, med([r['cpu']['parts'][k] for r in two])) for n, k in
                       (("the emulator", "fs"), ("nginx", "lb"), ("wrk", "wrk"), ("the kernel", "kernel"), ("other processes", "other"))),
                      key=lambda x: -x[1])[:2])
          + " cores")
        spread = [host_cores(r) / rps(r) * 1000 for r in runs]
        P(f"- the ratio is (cores the hosts got, {f(hc2 / hc1, 3)}x) x (CPU per upload, one host / two hosts, {f(cpu1 / cpu2, 3)}x) = "
          f"{f(hc2 / hc1 * cpu1 / cpu2, 3)}x (measured {f(ratio, 3)}x). The hosts' own CPU per upload "
          + (f"does not grow with a second host ({f(cpu1, 0)} -> {f(cpu2, 0)} ms; from run to run it spans "
             f"{f(min(spread), 0)}-{f(max(spread), 0)} ms on this VM)" if cpu2 <= cpu1 * 1.03 else
             f"grows by {f((cpu2 / cpu1 - 1) * 100, 1)}% with a second host (from run to run it spans {f(min(spread), 0)}-{f(max(spread), 0)} ms)")
          + f", so the gap to 2x is the CPU the rig takes from the hosts' cores: {f(rig2, 2)} cores with two hosts, "
          f"{f(rig2 / 2 * 100, 0)}% of the machine. Per host: {f(s2['rps'] / 2, 2)} uploads/s with two hosts vs {f(s1['rps'], 2)} alone, "
          f"which is also why the two-host p50 is higher at the same queue depth. On separate machines (nginx, clients and Cloud "
          f"Firestore elsewhere) that share would stay with the hosts")
    P()

    # ---------------------------------------------------------------- health
    P("### Health at the end")
    P()
    v = final.get("verify", {})
    P(f"- the emulator holds **{v.get('analyses_docs', '?')} analyses** ({v.get('analyses_distinct', '?')} distinct) and "
      f"{v.get('audit_creates', '?')} analysis.create audit entries; nginx answered **{final['access_201']} uploads with 201** over the "
      f"whole run (start-up and warm-up included) and logged {final['access_499']} as 499 (in flight when wrk stopped at its deadline: "
      + ("every one of them was finished and stored, though no client learned its id" if v.get('analyses_docs') == final['access_201'] + final['access_499']
         else "the worker may still finish and store them") + "): "
      + ("consistent" if final['access_201'] <= v.get('analyses_docs', -1) <= final['access_201'] + final['access_499'] else "**not consistent**"))
    for h in ("a", "b"):
        o = final["outbox"].get(h, {})
        P(f"- host {h}: outbox depth {o.get('depth', '?')}, deliveries {o.get('deliveries', '?')}, retries {o.get('retries', '?')}, "
          f"parked {o.get('parked', '?')} (ever {o.get('parkedTotal', '?')}); mediscope log warnings/errors: {final['logs'][h]}; "
          f"{final['events'][h]}")
    P(f"- nginx error log lines (not notice): {final['nginx_errors']}{(': ' + final['nginx_error_sample']) if final.get('nginx_error_sample') else ''}")
    P(f"- raw output: bench/out/scaleout/ (wrk output per run, runs.jsonl with each run's CPU per process, lab.txt, logs of every process)")
    P("<!-- end scaleout -->")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("snap"); p.add_argument("lab"); p.add_argument("out")
    p = sub.add_parser("record")
    for k in ("snap0", "snap1", "wrk", "access_log", "addrs", "label", "phase", "hosts"):
        p.add_argument("--" + k.replace("_", "-"), dest=k, required=True)
    for k in ("run", "conns", "first", "last", "wrk_pid"):
        p.add_argument("--" + k.replace("_", "-"), dest=k, type=int, required=True)
    p = sub.add_parser("cpu"); p.add_argument("snap0"); p.add_argument("snap1")
    sub.add_parser("outbox-depth")
    p = sub.add_parser("logsum"); p.add_argument("log")
    p = sub.add_parser("report"); p.add_argument("outdir")
    a = ap.parse_args()
    if a.cmd == "snap":
        json.dump(snap(a.lab), open(a.out, "w"))
    elif a.cmd == "record":
        run_record(a)
    elif a.cmd == "cpu":
        print(json.dumps(cpu_between(json.load(open(a.snap0)), json.load(open(a.snap1)), -1)))
    elif a.cmd == "outbox-depth":
        print(json.load(sys.stdin)["stats"]["depth"])
    elif a.cmd == "logsum":
        run_logsum(a)
    elif a.cmd == "report":
        run_report(a)


if __name__ == "__main__":
    main()
