#!/usr/bin/env bash
# bench/run_lua.sh
# Lua ping-pong (A) and SPSC over a 1024 buffer (B), side by side with the
# same workloads in C++ conch (conch_bench_channels) and Go at GOMAXPROCS=1
# (bench/go/main.go), all on one thread, in one run; prints medians and the
# ratios next to issue 5's targets (Lua A <= 1.5x Go and <= 4x C++ conch;
# Lua B <= 3x Go).
#
#   bench/run_lua.sh                      # RUNS=5, n = 1,000,000 (A) / 10,000,000 (B)
#   RUNS=3 NA=200000 NB=2000000 bench/run_lua.sh
#
# BUILD_DIR (default <repo>/build-lua-rel) is configured Release if new.
# NO_BUILD=1 uses the binaries already there. Runs are interleaved so drifting
# load on a shared machine spreads over every implementation.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-${BUILD_ROOT:-$ROOT}/build-lua-rel}
RUNS=${RUNS:-5}
NA=${NA:-1000000}
NB=${NB:-10000000}
JOBS=${JOBS:-2}

if [[ -z ${NO_BUILD:-} ]]; then
  [[ -f $BUILD/CMakeCache.txt ]] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$JOBS" --target conch_bench_lua conch_lua_module conch_bench_channels >/dev/null
  if command -v go >/dev/null; then
    mkdir -p "$BUILD/go-cache"
    GO111MODULE=off GOCACHE="$BUILD/go-cache" go build -o "$BUILD/conch_bench_go" "$ROOT/bench/go/main.go"
  fi
fi

run() {  # prints the value= field of the one result line, or FAIL
  local out
  out=$(timeout 300 "$@" 2>/dev/null | grep '^bench=' | tail -1) || true
  [[ $out =~ value=([0-9.]+) ]] && echo "${BASH_REMATCH[1]}" || echo FAIL
}

declare -A res
impls=(lua-embed lua-stock conch1 go1)
for ((r = 1; r <= RUNS; ++r)); do
  for w in A B; do
    n=$NA; [[ $w == B ]] && n=$NB
    res[$w,lua-embed]+=" $(run "$BUILD/bench/conch_bench_lua" $w $n)"
    res[$w,lua-stock]+=" $(run lua5.4 -e "package.cpath='$BUILD/lua/?.so'" "$ROOT/bench/lua/run.lua" $w $n)"
    res[$w,conch1]+=" $(run "$BUILD/bench/conch_bench_channels" $w 1 $n)"
    if [[ -x $BUILD/conch_bench_go ]]; then
      res[$w,go1]+=" $(GOMAXPROCS=1 run "$BUILD/conch_bench_go" $w 1 $n)"
    else
      res[$w,go1]+=" FAIL"
    fi
  done
done

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
spread() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%s..%s", lo, hi}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   runs: $RUNS   rev: $(git -C "$ROOT" rev-parse --short HEAD)"
printf '%-12s %-10s %12s  %s\n' workload impl "median ns/op" "min..max"
for w in A B; do
  name=A_pingpong; [[ $w == B ]] && name=B_spsc
  for i in "${impls[@]}"; do
    printf '%-12s %-10s %12s  %s\n' "$name" "$i" "$(echo ${res[$w,$i]} | median)" "$(echo ${res[$w,$i]} | spread)"
    eval "med_${w}_${i//-/_}=$(echo ${res[$w,$i]} | median)"
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2fx", a / b; else print "n/a" }'; }
echo
echo "A: Lua (embedded) / Go = $(ratio "$med_A_lua_embed" "$med_A_go1")  (target <= 1.5x)   Lua / C++ conch = $(ratio "$med_A_lua_embed" "$med_A_conch1")  (target <= 4x)"
echo "A: Lua (lua5.4)   / Go = $(ratio "$med_A_lua_stock" "$med_A_go1")                      Lua / C++ conch = $(ratio "$med_A_lua_stock" "$med_A_conch1")"
echo "B: Lua (embedded) / Go = $(ratio "$med_B_lua_embed" "$med_B_go1")  (target <= 3x)    Lua (lua5.4) / Go = $(ratio "$med_B_lua_stock" "$med_B_go1")"
