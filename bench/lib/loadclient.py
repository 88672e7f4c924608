"""The load clients of the bench scripts (standard library only): run_upload (bench/firestore.sh: N
uploads of one fixed multipart body, C at a time, one JSON line per upload: start, ms, status, id,
error) and closed_loop (bench/peers.sh: C clients each sending the next of several bodies as soon as
its previous answer is in, for a count or until a deadline). Each request is a new connection."""
import http.client
import json
import threading
import time


def split_url(url):
    """http://HOST:PORT/PATH -> (host, port, /PATH)"""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port), "/" + url.split("//", 1)[1].split("/", 1)[1]


def post(host, port, path, body, headers, timeout=300):
    """One POST on a new connection -> (status, response body); status 0 and the error text as the body
    when the connection failed."""
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e).encode()


def forward_stage_ms(data):
    """The forward stage a Mediscope answer reports for its own analysis (timingsMs.forward), else None."""
    try:
        value = json.loads(data).get("timingsMs", {}).get("forward")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def upload_headers(token, boundary):
    return {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}


def closed_loop(url, bodies, headers, concurrency, count=None, until=None):
    """concurrency clients, each POSTing the next body (round robin over `bodies`) as soon as its previous
    answer is in, until `count` requests were started or time.time() reaches `until` (requests in flight
    then are finished). -> one dict per request, in the order they finished: start and end (epoch s),
    ms, status, body (index), error (the start of a non-201 answer), forward_ms (the forward stage the
    answer reports, Mediscope's only)."""
    host, port, path = split_url(url)
    lock = threading.Lock()
    state = {"next": 0}
    out = []

    def client():
        while True:
            with lock:
                i = state["next"]
                if (count is not None and i >= count) or (until is not None and time.time() >= until):
                    return
                state["next"] = i + 1
            b = i % len(bodies)
            t0, m0 = time.time(), time.monotonic()
            status, data = post(host, port, path, bodies[b], headers)
            ms = (time.monotonic() - m0) * 1000
            e = None if status == 201 else data[:200].decode("utf-8", "replace")
            with lock:
                out.append({"start": round(t0, 6), "end": round(t0 + ms / 1000, 6), "ms": round(ms, 2),
                            "status": status, "body": b, "error": e, "forward_ms": forward_stage_ms(data) if status == 201 else None})

    threads = [threading.Thread(target=client) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run_upload(args):
    body = open(args.body, "rb").read()
    host, port, path = split_url(args.url)
    headers = upload_headers(args.token, args.boundary)
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
            rid, err = None, None
            status, data = post(host, port, path, body, headers)
            if status == 0:
                err = data.decode("utf-8", "replace")
            else:
                try:
                    rid = json.loads(data).get("id")
                except (ValueError, AttributeError):
                    err = data[:200].decode("utf-8", "replace")
                if status != 201:
                    err = data[:300].decode("utf-8", "replace")
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
