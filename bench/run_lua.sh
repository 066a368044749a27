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
# BENCH_TSV=path also writes every measurement there as TSV, as it is taken
# (metric cell impl run value unit; read by bench/report.sh).
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

run() {  # prints wall/cpu (the value= and cpu= fields of the result line), or FAIL
  local out
  out=$(timeout 300 "$@" 2>/dev/null | grep '^bench=' | tail -1) || true
  if [[ $out =~ value=([0-9.]+) ]]; then
    local wall=${BASH_REMATCH[1]} cpu=0
    [[ $out =~ cpu=([0-9.]+) ]] && cpu=${BASH_REMATCH[1]}
    echo "$wall/$cpu"
  else
    echo FAIL
  fi
}

declare -A res
impls=(lua-embed lua-stock conch1 go1)
[[ -z ${BENCH_TSV:-} ]] || : >"$BENCH_TSV"
add() {  # workload impl run result(wall/cpu or FAIL): appends to res and the TSV
  res[$1,$2]+=" $4"
  [[ -n ${BENCH_TSV:-} && $4 == */* ]] || return 0
  printf 'time\t%s\t%s\t%s\t%s\tns/op\ncpu\t%s\t%s\t%s\t%s\tns/op\n' \
    "$1" "$2" "$3" "${4%/*}" "$1" "$2" "$3" "${4#*/}" >>"$BENCH_TSV"
}
for ((r = 1; r <= RUNS; ++r)); do
  for w in A B; do
    n=$NA; [[ $w == B ]] && n=$NB
    add $w lua-embed $r "$(run "$BUILD/bench/conch_bench_lua" $w $n)"
    add $w lua-stock $r "$(run lua5.4 -e "package.cpath='$BUILD/lua/?.so'" "$ROOT/bench/lua/run.lua" $w $n)"
    add $w conch1 $r "$(run "$BUILD/bench/conch_bench_channels" $w 1 $n)"
    if [[ -x $BUILD/conch_bench_go ]]; then
      add $w go1 $r "$(GOMAXPROCS=1 run "$BUILD/conch_bench_go" $w 1 $n)"
    else
      add $w go1 $r FAIL
    fi
  done
done

# $1 = field (1 wall, 2 cpu); stdin: the results of one workload and implementation.
median() { tr ' ' '\n' | grep -E '^[0-9.]+/' | cut -d/ -f"$1" | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
spread() { tr ' ' '\n' | grep -E '^[0-9.]+/' | cut -d/ -f"$1" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%s..%s", lo, hi}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   runs: $RUNS   rev: $(git -C "$ROOT" rev-parse --short HEAD)"
printf '%-12s %-10s %12s  %-18s %12s  %s\n' workload impl "wall ns/op" "wall min..max" "cpu ns/op" "cpu min..max"
for w in A B; do
  name=A_pingpong; [[ $w == B ]] && name=B_spsc
  for i in "${impls[@]}"; do
    printf '%-12s %-10s %12s  %-18s %12s  %s\n' "$name" "$i" "$(echo ${res[$w,$i]} | median 1)" \
      "$(echo ${res[$w,$i]} | spread 1)" "$(echo ${res[$w,$i]} | median 2)" "$(echo ${res[$w,$i]} | spread 2)"
    eval "wall_${w}_${i//-/_}=$(echo ${res[$w,$i]} | median 1)"
    eval "cpu_${w}_${i//-/_}=$(echo ${res[$w,$i]} | median 2)"
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2fx", a / b; else print "n/a" }'; }
echo
echo "ratios (wall | cpu), medians:"
echo "A: Lua embedded / Go      = $(ratio "$wall_A_lua_embed" "$wall_A_go1") | $(ratio "$cpu_A_lua_embed" "$cpu_A_go1")   (target <= 1.5x)"
echo "A: Lua lua5.4   / Go      = $(ratio "$wall_A_lua_stock" "$wall_A_go1") | $(ratio "$cpu_A_lua_stock" "$cpu_A_go1")"
echo "A: Lua embedded / C++     = $(ratio "$wall_A_lua_embed" "$wall_A_conch1") | $(ratio "$cpu_A_lua_embed" "$cpu_A_conch1")   (target <= 4x)"
echo "B: Lua embedded / Go      = $(ratio "$wall_B_lua_embed" "$wall_B_go1") | $(ratio "$cpu_B_lua_embed" "$cpu_B_go1")   (target <= 3x)"
echo "B: Lua lua5.4   / Go      = $(ratio "$wall_B_lua_stock" "$wall_B_go1") | $(ratio "$cpu_B_lua_stock" "$cpu_B_go1")"
