"""Memory of each process of a running stack by role (master, fork server, inference and io workers,
background processes, nginx), from /proc/PID/smaps_rollup, and whether each maps libtorch.

    python3 bench/processes.py PORT MASTER_PID NGINX_PID LABEL >> rows.jsonl
Prints one JSON line: {"label", "roles": {role: {"count", "rss_mib", "pss_mib", "anon_mib", "libtorch"}}}.
"""
import json
import sys
import urllib.request

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from lib.procs import tree_memory  # noqa: E402


def maps_libtorch(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libtorch_cpu.so" in f.read()
    except OSError:
        return False


def main():
    port, master, nginx, label = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10))
    role = {master: "master"}
    for name, pool in status["pools"].items():
        for w in pool["snapshot"]["workers"]:
            role[w["pid"]] = f"{name} worker"
        fork = pool["snapshot"].get("forkServer")
        if fork and fork.get("pid"):
            role[fork["pid"]] = f"{name} fork server"

    def role_of(pid, ppid, root):
        if root == "nginx":
            return "nginx"
        return role.get(pid, "background process")

    sample = tree_memory({master: "mediscope", nginx: "nginx"}, role_of)
    roles = {}
    for p in sample["processes"]:
        r = roles.setdefault(p["role"], {"count": 0, "rss_mib": 0.0, "pss_mib": 0.0, "anon_mib": 0.0, "libtorch": False})
        r["count"] += 1
        r["rss_mib"] += p.get("rss", 0) / 1024
        r["pss_mib"] += p.get("pss", 0) / 1024
        r["anon_mib"] += p.get("pss_anon", 0) / 1024
        r["libtorch"] = r["libtorch"] or maps_libtorch(p["pid"])
    print(json.dumps({"label": label, "pss_total_mib": sample["pss_kib"] / 1024, "roles": roles}))


if __name__ == "__main__":
    main()
