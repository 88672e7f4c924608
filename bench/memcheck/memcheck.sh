#!/usr/bin/env bash
# Memory check of the libtorch shim (valgrind memcheck) on the committed tiny model.
# clang's DWARF 5 is too new for Debian's valgrind 3.19, hence -gdwarf-4.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/out/memcheck
mkdir -p "$out"
inc=Sources/CTorch/include
clang++ -gdwarf-4 -O1 -std=c++17 -isystem /usr/include/torch/csrc/api/include -I"$inc" -c Sources/CTorch/ctorch.cpp -o "$out/ctorch.o"
clang -gdwarf-4 -I"$inc" bench/memcheck/shim_memcheck.c "$out/ctorch.o" -o "$out/shim_memcheck" -ltorch -ltorch_cpu -lc10 -lstdc++
valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite \
  "$out/shim_memcheck" models/tiny/tiny.pt 2>&1 | tee "$out/valgrind.log" | tail -15
