"""Reading what a bench run left in its output folder, for the sections of bench/RESULTS.md (standard
library only)."""
import json
import os


def read_meta(out):
    """meta.txt in `out`: one KEY=VALUE a line (the value may hold "="; lines without one are skipped)."""
    meta = {}
    for line in open(os.path.join(out, "meta.txt")):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v
    return meta


def read_jsonl(path):
    """A file of JSON lines; blank lines are skipped."""
    return [json.loads(line) for line in open(path) if line.strip()]


def wrk_result(path):
    """The "RESULT key=value ..." line bench/post.lua prints at the end of a wrk run, as floats."""
    for line in open(path, errors="replace"):
        if line.startswith("RESULT "):
            return {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)}
    raise SystemExit(f"no RESULT line in {path}")


def pct(values, q):
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]


def median(values):
    """The median of values (the mean of the middle two for an even count); NaN when there are none."""
    v = sorted(values)
    if not v:
        return float("nan")
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
