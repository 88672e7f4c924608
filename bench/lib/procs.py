"""Process sampling from /proc (Linux, standard library only): which process holds a socket and its
parent (the Firestore proxy), snapshots of every process's CPU time with what each part of a lab
used between two of them (the scale-out benchmark), and the memory of whole process trees (PSS from
smaps_rollup: the peers benchmark)."""
import array
import collections
import os
import re
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def stat_fields(text):
    """A /proc/PID/stat (or task/TID/stat) line: (comm, the fields after it). comm may hold spaces and
    parentheses, so it ends at the last ")"."""
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


# ---------------------------------------------------------------- who sent a connection

def socket_inode(local_port, remote_port):
    """The inode of the socket whose local port is local_port and remote port remote_port (loopback)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if int(p[1].rsplit(":", 1)[1], 16) == local_port and int(p[2].rsplit(":", 1)[1], 16) == remote_port:
                        return p[9]
        except OSError:
            continue
    return None


class PidFinder:
    """Maps a socket inode to the pid holding it, looking first at the processes running `binary`."""

    def __init__(self, binary):
        self.binary = os.path.realpath(binary) if binary else None
        self.candidates = []
        self.lock = threading.Lock()

    def _refresh(self):
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if self.binary is None or os.readlink(f"/proc/{d}/exe") == self.binary:
                    found.append(int(d))
            except OSError:
                pass
        self.candidates = found

    @staticmethod
    def _holds(pid, target):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        return False

    def pid(self, inode):
        if inode is None or inode == "0":
            return None
        target = f"socket:[{inode}]"
        with self.lock:
            cands = list(self.candidates)
        for pid in cands:
            if self._holds(pid, target):
                return pid
        with self.lock:
            self._refresh()
            cands = list(self.candidates)
        for pid in cands:
            if self._holds(pid, target):
                return pid
        return None


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(stat_fields(f.read())[1][1])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- CPU time snapshots

def threads_of(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm, rest = stat_fields(s)
        out.append({"tid": int(tid), "comm": comm, "start": int(rest[19]),
                    "own": int(rest[11]) + int(rest[12])})
    return out


def jvm_kind(name):
    if name.startswith("GC Thread") or name.startswith("G1 ") or name.startswith("GC "):
        return "gc"
    if "CompilerThre" in name or name.startswith("C1 ") or name.startswith("C2 "):
        return "jit"
    return "work"


def snap(lab):
    labels = {}
    for name in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else []):
        if name.startswith(lab + "-"):
            try:
                labels[os.stat("/run/netns/" + name).st_ino] = name[len(lab) + 1:]
            except OSError:
                pass
    root_ino = os.stat("/proc/self/ns/net").st_ino
    procs = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm, rest = stat_fields(s)   # rest[0] is field 3 (state): field n = rest[n - 3]
        ppid = int(rest[1])
        if int(d) == 2 or ppid == 2:
            ns = "kernel"
        else:
            try:
                ino = os.stat(f"/proc/{d}/ns/net").st_ino
                ns = labels.get(ino, "root" if ino == root_ino else "other-ns")
            except OSError:
                ns = "root"
        entry = {"pid": int(d), "ppid": ppid, "comm": comm, "ns": ns, "start": int(rest[19]),
                 "own": int(rest[11]) + int(rest[12]), "children": int(rest[13]) + int(rest[14])}
        if ns == "fs":   # the emulator's JVM: per thread, to split GC and JIT from the work
            entry["threads"] = threads_of(d)
        procs.append(entry)
    cpus = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                p = line.split()
                cpus[p[0]] = [int(x) for x in p[1:9]]
    return {"t": time.time(), "mono": time.monotonic(), "cpus": cpus, "procs": procs}


def cpu_between(s0, s1, wrk_pid):
    """Cores used (CPU seconds per wall second) per part between two snapshots.

    The lab's parts (hosts a and b, nginx = lb, the emulator = fs) and wrk: their processes' own time plus
    their reaped children's. kernel: kernel threads plus the cores' irq + softirq time (charged to no
    process). other: the rest of the cores' busy time (processes outside the lab: other users, this
    script's sampling); computed as the remainder because a process reaped in the window brings its
    whole life into its parent's cutime, which would overcount busy neighbours such as a compiler
    driver. other_top: those processes' own time by name, for information.
    """
    wall = s1["mono"] - s0["mono"]
    before = {(p["pid"], p["start"]): p for p in s0["procs"]}
    parts = collections.Counter()
    named = collections.Counter()
    per_proc = []
    for p in s1["procs"]:
        old = before.get((p["pid"], p["start"]))
        own = p["own"] - (old["own"] if old else 0)
        kids = p["children"] - (old["children"] if old else 0)
        ns = p["ns"]
        if ns in ("a", "b", "lb", "fs"):
            part = ns
        elif ns == "kernel":
            part, kids = "kernel", 0
        elif p["pid"] == wrk_pid or p["comm"] == "wrk":
            part = "wrk"
        else:
            named[p["comm"]] += own
            continue
        parts[part] += own + kids
        per_proc.append({"pid": p["pid"], "ppid": p["ppid"], "comm": p["comm"], "part": part,
                         "cores": round((own + kids) / CLK / wall, 4)})
    # The emulator's threads: garbage collection, JIT compilation, the rest (requests, the JVM's own).
    jvm, jvm_names = collections.Counter(), collections.Counter()
    tbefore = {(t["tid"], t["start"]): t for p in s0["procs"] for t in p.get("threads", [])}
    for p in s1["procs"]:
        for t in p.get("threads", []):
            old = tbefore.get((t["tid"], t["start"]))
            d = t["own"] - (old["own"] if old else 0)
            jvm[jvm_kind(t["comm"])] += d
            jvm_names[re.sub(r"[#-]?[0-9]+$", "", t["comm"])] += d
    cores = {}
    irq = 0.0
    for cpu in sorted(k for k in s1["cpus"] if k != "cpu"):
        a, b = s0["cpus"][cpu], s1["cpus"][cpu]
        d = [y - x for x, y in zip(a, b)]
        total = sum(d) or 1
        # user nice system idle iowait irq softirq steal
        cores[cpu] = {"busy": (d[0] + d[1] + d[2] + d[5] + d[6]) / total, "steal": d[7] / total,
                      "idle": (d[3] + d[4]) / total, "irq": (d[5] + d[6]) / total}
        irq += cores[cpu]["irq"]
    busy = sum(c["busy"] for c in cores.values())
    out = {k: parts[k] / CLK / wall for k in ("a", "b", "lb", "fs", "wrk", "kernel")}
    out["kernel_threads"] = out["kernel"]
    out["irq"] = irq
    out["kernel"] += irq
    # The remainder; sampling the processes and /proc/stat at slightly different instants makes it
    # a few thousandths of a core off, so an idle machine can show a tiny negative: clamped at 0.
    out["other_raw"] = busy - sum(out[k] for k in ("a", "b", "lb", "fs", "wrk", "kernel"))
    out["other"] = max(0.0, out["other_raw"])
    out["busy"] = busy
    out["steal"] = sum(c["steal"] for c in cores.values())
    out["idle"] = sum(c["idle"] for c in cores.values())
    # Inside each host: the busiest child of its master (the inference worker) and the rest.
    hosts = {}
    for h in ("a", "b"):
        mine = [p for p in per_proc if p["part"] == h]
        pids = {p["pid"] for p in mine}
        kids = sorted((p for p in mine if p["ppid"] in pids), key=lambda p: -p["cores"])
        total = sum(p["cores"] for p in mine)
        hosts[h] = {"busiest_child": kids[0]["cores"] if kids else 0.0, "rest": total - (kids[0]["cores"] if kids else 0.0),
                    "processes": len(mine)}
    return {"wall": wall, "cores": cores, "parts": out, "hosts": hosts,
            "emulator_threads": {k: jvm[k] / CLK / wall for k in ("gc", "jit", "work")},
            "emulator_thread_names": [[n, round(v / CLK / wall, 3)] for n, v in jvm_names.most_common(8) if v > 0],
            "other_top": [[c, round(v / CLK / wall, 3)] for c, v in named.most_common(5) if v > 0],
            "procs": sorted((p for p in per_proc if p["cores"] > 0), key=lambda p: -p["cores"])[:25]}


# ---------------------------------------------------------------- memory of process trees

def parents():
    """{pid: ppid} of every process now."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    out[int(d)] = int(stat_fields(f.read())[1][1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def tree(roots):
    """{pid: (ppid, root)} for the roots and all their descendants (each under the root it descends from)."""
    ppid = parents()
    kids = collections.defaultdict(list)
    for p, pp in ppid.items():
        kids[pp].append(p)
    out = {}
    for r in roots:
        if r not in ppid:
            continue
        todo = [r]
        while todo:
            p = todo.pop()
            if p in out:
                continue
            out[p] = (ppid.get(p), r)
            todo.extend(kids.get(p, ()))
    return out


def memory_kib(pid):
    """Pss, Pss_Anon, Pss_File, Pss_Shmem, Rss and the private pages (in no other process) of one process
    from /proc/PID/smaps_rollup, in KiB (None when it is gone)."""
    keys = {"Pss:": "pss", "Pss_Anon:": "pss_anon", "Pss_File:": "pss_file", "Pss_Shmem:": "pss_shmem", "Rss:": "rss",
            "Private_Clean:": "private_clean", "Private_Dirty:": "private_dirty"}
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k = line.split(None, 1)[0]
                if k in keys:
                    out[keys[k]] = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return out


def cpu_seconds(pid):
    """User + system CPU time a process has used so far (its own threads, not reaped children), in s."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = stat_fields(f.read())[1]
        return (int(rest[11]) + int(rest[12])) / CLK
    except (OSError, ValueError, IndexError):
        return None


def cpu_totals(cpus=None):
    """Time so far from /proc/stat, in s: busy (user, nice, system, irq, softirq), idle (idle, iowait)
    and steal (taken by the hypervisor for other guests), of all cores or of the cores in `cpus`."""
    out = {"busy": 0.0, "idle": 0.0, "steal": 0.0}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *v = line.split()
            if (cpus is None and name != "cpu") or (cpus is not None and name[3:] not in {str(c) for c in cpus}):
                continue
            v = [int(x) for x in v]
            out["busy"] += (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK
            out["idle"] += (v[3] + v[4]) / CLK
            out["steal"] += v[7] / CLK
    return out


def resident_bytes(pids):
    """The distinct physical pages resident in any of `pids`, in bytes: the memory these processes hold
    together, counted once however many of them map a page and whoever else maps it too (unlike PSS,
    which gives part of a shared library to every other program using it). Reads /proc/PID/maps and
    /proc/PID/pagemap; None when the page frame numbers are hidden (not root)."""
    frames = set()
    present, mask = 1 << 63, (1 << 55) - 1
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                ranges = [line.split()[0] for line in f if not line.rstrip().endswith("[vsyscall]")]
            with open(f"/proc/{pid}/pagemap", "rb") as pm:
                for r in ranges:
                    a, b = (int(x, 16) for x in r.split("-"))
                    pm.seek(a // PAGE * 8)
                    entries = array.array("Q", pm.read((b - a) // PAGE * 8))
                    got = [e & mask for e in entries if e & present]
                    if got and not any(got):
                        return None
                    frames.update(got)
        except OSError:
            continue
    return len(frames) * PAGE


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def tree_memory(roots, role_of=None):
    """One sample of the memory of whole process trees: {"t", "pss_kib", "rss_kib", "private_kib", "processes": [...]}
    (each process with its CPU time so far, cpu_s, so two samples also give the CPU each used between them).
    roots: {pid: label}; role_of(pid, ppid, root_label) -> a role name for a process (default: the root's
    label for the root, "<label> child" for the rest). PSS sums to what the trees take together (shared
    pages are split between the processes that map them, inside the trees or not); RSS counts them in each;
    private counts only the pages no other process maps."""
    procs = []
    for pid, (ppid, root) in sorted(tree(list(roots)).items()):
        m = memory_kib(pid)
        if m is None:
            continue
        label = roots[root]
        role = role_of(pid, ppid, label) if role_of else None
        role = role or (label if pid == root else label + " child")
        procs.append(dict(pid=pid, ppid=ppid, comm=comm_of(pid), role=role, cpu_s=cpu_seconds(pid), **m))
    return {"t": time.time(), "pss_kib": sum(p.get("pss", 0) for p in procs), "rss_kib": sum(p.get("rss", 0) for p in procs),
            "private_kib": sum(p.get("private_clean", 0) + p.get("private_dirty", 0) for p in procs), "processes": procs}
