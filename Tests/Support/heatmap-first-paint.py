"""What the dashboard waits for after an upload (issue 23), one upload at a time through the stack.

Usage: heatmap-first-paint.py PORT TOKEN VARIANTS_DIR RUNS. Uploads RUNS scans (a different file each
time, so no heatmap is already drawn: they are content-addressed), and after each answer fetches every
heatmap and the scan at once, as the dashboard does. Prints one RESULT line of medians (the first
quarter, at most 3, are warm-up): the upload as the client saw it, its encode stage as the server
reports it, and the time from the answer to the last heatmap fetched."""
import http.client, json, os, statistics, sys, threading, time, uuid

port, token, folder, runs = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
variants = sorted(os.path.join(folder, f) for f in os.listdir(folder))


def multipart(patient, image):
    b = "fp" + uuid.uuid4().hex
    field = lambda name, value: f"--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    file = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + open(image, "rb").read() + b"\r\n"
    return field("patient_id", patient) + field("modality", "MRI") + file + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def get(path, out, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    body = r.read()
    out[i] = (r.status, r.getheader("Content-Type"), len(body), time.perf_counter())
    c.close()


uploads, encodes, heatmaps = [], [], []
for n in range(runs):
    body, ctype = multipart(f"P-FP-{n}", variants[n % len(variants)])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    c.request("POST", "/api/analyses", body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    r = c.getresponse()
    raw = r.read()
    t1 = time.perf_counter()
    c.close()
    assert r.status == 201, (r.status, raw[:300])
    answer = json.loads(raw)
    urls = [result["heatmap"]["url"] for result in answer["results"]]
    out = [None] * (len(urls) + 1)
    threads = [threading.Thread(target=get, args=(u, out, i)) for i, u in enumerate(urls + [answer["scan"]["url"]])]
    for t in threads: t.start()
    for t in threads: t.join()
    assert all(o[0] == 200 for o in out) and all(o[1] == "image/webp" for o in out[:-1]), out
    uploads.append((t1 - t0) * 1000)
    encodes.append(answer["timingsMs"]["encode"])
    heatmaps.append((max(o[3] for o in out[:-1]) - t1) * 1000)
    time.sleep(0.3)  # whatever an upload leaves running ends before the next
skip = min(3, runs // 4)
med = lambda xs: statistics.median(xs[skip:])
print(f"RESULT runs={runs - skip} upload_ms={med(uploads):.1f} encode_ms={med(encodes):.1f} "
      f"answer_to_heatmaps_ms={med(heatmaps):.1f} upload_plus_heatmaps_ms={med([a + b for a, b in zip(uploads, heatmaps)]):.1f}")
