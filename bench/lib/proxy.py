"""The counting, refusing HTTP proxy of bench/firestore.sh (standard library only): every request it
forwards is logged as one JSON line with its kind, the collections it touches and the pid that sent
it; USR1 closes the port (an outage), USR2 opens it again. read_log reads that log back."""
import http.client
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib.procs import PidFinder, ppid_of, socket_inode

KINDS = ("commit", "batchGet", "runQuery", "runAggregationQuery", "listen", "write")


def kind_of(path):
    tail = path.split("?", 1)[0].rsplit(":", 1)
    return tail[1] if len(tail) == 2 and tail[1] in KINDS else "other"


def collection_of(name):
    """projects/p/databases/d/documents/COLL/ID... -> COLL"""
    if "/documents/" not in name:
        return "?"
    return name.split("/documents/", 1)[1].split("/", 1)[0]


def collections_of(kind, body):
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return []
    names = []
    if kind == "commit":
        for w in doc.get("writes", []):
            n = (w.get("update") or {}).get("name") or w.get("delete") or (w.get("transform") or {}).get("document")
            if n:
                names.append(collection_of(n))
    elif kind == "batchGet":
        names = [collection_of(n) for n in doc.get("documents", [])]
    elif kind in ("runQuery", "runAggregationQuery"):
        q = doc.get("structuredQuery") or (doc.get("structuredAggregationQuery") or {}).get("structuredQuery") or {}
        names = [f.get("collectionId", "?") for f in q.get("from", [])]
    return sorted(set(names))


def run_proxy(args):
    up_host, up_port = args.upstream.rsplit(":", 1)
    up_port = int(up_port)
    finder = PidFinder(args.binary)
    log = open(args.log, "a", buffering=1)
    log_lock = threading.Lock()

    def write(entry):
        line = json.dumps(entry, separators=(",", ":"))
        with log_lock:
            log.write(line + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # so that Expect: 100-continue is answered at once

        def log_message(self, *a):
            pass

        def _any(self):
            t_wall = time.time()
            t0 = time.monotonic()
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            peer_port = self.client_address[1]
            pid = finder.pid(socket_inode(peer_port, args.port))
            t1 = time.monotonic()
            kind = kind_of(self.path)
            headers = {k: v for k, v in (("Authorization", self.headers.get("Authorization")),
                                          ("Content-Type", self.headers.get("Content-Type"))) if v}
            status, data, ctype = 502, b"", "application/json"
            try:
                conn = http.client.HTTPConnection(up_host, up_port, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                status, data, ctype = r.status, r.read(), r.getheader("Content-Type") or ctype
                conn.close()
            except (OSError, http.client.HTTPException) as e:
                data = json.dumps({"error": {"code": 502, "message": f"proxy: {e}", "status": "UNAVAILABLE"}}).encode()
            t2 = time.monotonic()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            write({"t": round(t_wall, 6), "pid": pid, "ppid": ppid_of(pid) if pid else None, "kind": kind,
                   "coll": collections_of(kind, body), "status": status, "req_bytes": len(body), "resp_bytes": len(data),
                   "expect100": bool(self.headers.get("Expect")), "upstream_ms": round((t2 - t1) * 1000, 3),
                   "proxy_ms": round((t1 - t0 + time.monotonic() - t2) * 1000, 3)})

        do_POST = do_GET = do_PATCH = do_DELETE = _any

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    state = {"server": None, "thread": None}

    def open_port():
        s = Server(("127.0.0.1", args.port), Handler)
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        state["server"], state["thread"] = s, t

    def close_port():
        s = state["server"]
        if s is not None:
            s.shutdown()
            s.server_close()
            state["server"] = None

    wanted = []
    signal.signal(signal.SIGUSR1, lambda *_: wanted.append("refuse"))
    signal.signal(signal.SIGUSR2, lambda *_: wanted.append("pass"))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    open_port()
    write({"event": "pass", "t": round(time.time(), 6)})
    print(f"proxy: 127.0.0.1:{args.port} -> {args.upstream}, log {args.log}", file=sys.stderr, flush=True)
    while not stop:
        while wanted:
            w = wanted.pop(0)
            if w == "refuse" and state["server"] is not None:
                close_port()
                write({"event": "refuse", "t": round(time.time(), 6)})
            elif w == "pass" and state["server"] is None:
                open_port()
                write({"event": "pass", "t": round(time.time(), 6)})
        time.sleep(0.02)
    close_port()


def read_log(path):
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue
