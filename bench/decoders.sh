#!/usr/bin/env bash
# Decoder budgets: writes the "Decoder budgets" section of bench/RESULTS.md (make bench-decoders).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
{
  .build/release/mediscope-bench decoder-budgets
} > bench/out/decoders.md
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(. /etc/os-release; echo "$PRETTY_NAME")"
python3 - bench/RESULTS.md bench/out/decoders.md "$(date -u +%Y-%m-%dT%H:%MZ)" "$machine" "$(git rev-parse --short HEAD)" <<'PY'
import os, re, sys
path, section, date, machine, commit = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4], sys.argv[5]
section = section.replace("## Decoder budgets (issue 9)\n", f"## Decoder budgets (issue 9)\n\n- date: {date}\n- machine: {machine}\n- commit: {commit}\n- command: `make bench-decoders`\n", 1)
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
pattern = re.compile(r"<!-- begin decoders -->.*?<!-- end decoders -->\n?", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path + ".new", "w").write(text)
os.replace(path + ".new", path)
PY
cat bench/out/decoders.md
