"""The Firestore emulator read directly (standard library only): are the uploaded analyses stored
exactly once, each with one analysis.create audit entry? Used by bench/firestore.py verify, which
bench/firestore.sh and bench/scaleout.sh run."""
import http.client
import json


def run_query(host, project, query):
    h, p = host.rsplit(":", 1)
    c = http.client.HTTPConnection(h, int(p), timeout=60)
    c.request("POST", f"/v1/projects/{project}/databases/(default)/documents:runQuery",
              body=json.dumps({"structuredQuery": query}), headers={"Authorization": "Bearer owner", "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"runQuery {query['from']}: HTTP {r.status}: {data[:300]!r}")
    return [x["document"] for x in json.loads(data) if "document" in x]


def run_verify(args):
    ids = []
    for path in args.ids:
        for line in open(path):
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                e = json.loads(line)
                if e.get("status") == 201 and e.get("id"):
                    ids.append(e["id"])
            else:
                ids.append(line)
    docs = run_query(args.emulator, args.project, {"from": [{"collectionId": "analyses"}], "select": {"fields": [{"fieldPath": "__name__"}]}})
    stored = [d["name"].rsplit("/", 1)[1] for d in docs]
    audit = run_query(args.emulator, args.project, {"from": [{"collectionId": "audit"}],
                                                     "select": {"fields": [{"fieldPath": "action"}, {"fieldPath": "recordId"}]}})
    creates = [(d.get("fields", {}).get("recordId") or {}).get("stringValue") for d in audit
               if (d.get("fields", {}).get("action") or {}).get("stringValue") == "analysis.create"]
    want = set(ids)
    from collections import Counter
    cc = Counter(creates)
    print(json.dumps({
        "uploaded": len(ids), "uploaded_distinct": len(want), "analyses_docs": len(stored), "analyses_distinct": len(set(stored)),
        "missing": sorted(want - set(stored))[:10], "missing_n": len(want - set(stored)),
        "extra_n": len(set(stored) - want),
        "audit_docs": len(audit), "audit_creates": len(creates),
        "audit_creates_missing_n": sum(1 for i in want if cc[i] == 0),
        "audit_creates_duplicated_n": sum(1 for i in want if cc[i] > 1),
        "exactly_once": len(stored) == len(set(stored)) == len(want) and set(stored) == want
                        and all(cc[i] == 1 for i in want) and len(creates) == len(want),
    }, indent=1))
