"""The load client of bench/firestore.sh (standard library only): N uploads of one fixed multipart
body, C at a time, one JSON line per upload (start, ms, status, id, error)."""
import http.client
import json
import threading
import time


def run_upload(args):
    body = open(args.body, "rb").read()
    host, port = args.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    path = "/" + args.url.split("//", 1)[1].split("/", 1)[1]
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": f"multipart/form-data; boundary={args.boundary}"}
    out = open(args.out, "a", buffering=1)
    lock = threading.Lock()
    todo = list(range(args.count))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            t = time.time()
            t0 = time.monotonic()
            status, rid, err = 0, None, None
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=300)
                c.request("POST", path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                status = r.status
                c.close()
                try:
                    rid = json.loads(data).get("id")
                except ValueError:
                    err = data[:200].decode("utf-8", "replace")
                if status != 201:
                    err = data[:300].decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as e:
                err = str(e)
            ms = (time.monotonic() - t0) * 1000
            with lock:
                out.write(json.dumps({"t": round(t, 6), "ms": round(ms, 2), "status": status, "id": rid, "error": err}) + "\n")
            if args.interval > 0:
                time.sleep(args.interval)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
