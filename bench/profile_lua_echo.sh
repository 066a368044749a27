#!/usr/bin/env bash
# bench/profile_lua_echo.sh
# Server instructions per echoed message (callgrind) for the Lua echo servers and conch's C++ one.
#
#   bench/profile_lua_echo.sh [BUILD_DIR]          (default: build, RelWithDebInfo or Release)
#   SERVERS="conch cxx luv" CELLS="16x64 256x64" SECS=4 bench/profile_lua_echo.sh
# Each server (bench/lua/echo_server.lua's conch, lsocket, cqueues, luv; cxx =
# conch_bench_sock_echo) runs under `valgrind --tool=callgrind --instr-atstart=no`;
# conch_bench_sock_loadgen warms it up for 2 s (TCP, one request in flight), then
# collection is switched on (callgrind_control) for a second load run of SECS s, and
# the server's instructions over that run are divided by the messages it echoed
# (the generator's "bytes echoed" / size). Instruction counts do not depend on the
# machine's load, so servers compare within and across runs; the profiles stay in
# OUT (default /tmp/lua-echo-profile) for callgrind_annotate. Prints per cell and
# server: instructions a message, and the ratio to conch's C++ server.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$(cd "${1:-$ROOT/build}" && pwd)
SECS=${SECS:-4}
CELLS=${CELLS:-"16x64 16x16384 256x64 256x16384"}
SERVERS=${SERVERS:-"cxx conch lsocket cqueues luv"}
OUT=${OUT:-/tmp/lua-echo-profile}
LUA=${LUA:-lua5.4}
gen=$B/bench/conch_bench_sock_loadgen
cxx=$B/bench/conch_bench_sock_echo
for x in "$gen" "$cxx"; do [[ -x $x ]] || { echo "no $x: build it first"; exit 1; }; done
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
mkdir -p "$OUT"
pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; true' EXIT

for cell in $CELLS; do
  conns=${cell%x*}; size=${cell#*x}
  for s in $SERVERS; do
    port=$((20000 + RANDOM % 20000))
    prof=$OUT/$s-$cell.out
    vg=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$prof")
    if [[ $s == cxx ]]; then cmd=("$cxx" "tcp:$port")
    else cmd=("$LUA" "$ROOT/bench/lua/echo_server.lua" "$s" "tcp:$port"); fi
    rm -f "$prof"*
    LUA_CPATH="$B/lua/?.so;;" "${vg[@]}" "${cmd[@]}" > "$OUT/$s-$cell.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do grep -q '^ready' "$OUT/$s-$cell.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    grep -q '^ready' "$OUT/$s-$cell.log" || { echo "server $s did not start:"; cat "$OUT/$s-$cell.log"; exit 1; }
    "$gen" "tcp:127.0.0.1:$port" "$conns" "$size" 1 2 > /dev/null 2>&1 || true  # warm-up (JIT of valgrind)
    callgrind_control -i on $pid > /dev/null
    bytes=$("$gen" "tcp:127.0.0.1:$port" "$conns" "$size" 1 "$SECS" 2>&1 >/dev/null |
            sed -n 's/.* \([0-9][0-9]*\) bytes echoed.*/\1/p')
    callgrind_control -i off $pid > /dev/null
    callgrind_control -d $pid > /dev/null
    kill $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    pid=""
    ir=$(cat "$prof"* 2>/dev/null | sed -n 's/^totals: *\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    echo "cell=$cell server=$s bytes=${bytes:-0} ir=$ir"
  done
done | tee "$OUT/summary" | awk '
  { delete v; for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] } }
  { c = v["cell"]; split(c, cs, "x"); msgs = v["bytes"] / cs[2]
    per = msgs > 0 ? v["ir"] / msgs : 0
    if (v["server"] == "cxx") base[c] = per
    printf "%-9s %-8s %10.0f msgs %9.0f instr/msg", c, v["server"], msgs, per
    if (base[c] > 0) printf "  %5.2fx C++", per / base[c]
    printf "\n" }'
