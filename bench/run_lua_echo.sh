#!/usr/bin/env bash
# bench/run_lua_echo.sh
# Lua echo servers side by side (issue 17): conch, lsocket on conch, cqueues, luv (and the real lsocket).
#
#   bench/run_lua_echo.sh [--smoke] [BUILD_DIR]     (default: build; needs BUILD_DIR/bench
#                                                   and BUILD_DIR/lua from a Release build)
#   SECS=3 RUNS=3 bench/run_lua_echo.sh build-rel
# Servers: bench/lua/echo_server.lua under the stock lua5.4, pinned to CPU 0; the load
# generator (conch_bench_sock_loadgen) pinned to CPU 1. Cells: TCP, 16 and 256 connections,
# 64 B and 16 KiB messages, one in flight. cqueues and luv run if their Debian packages
# (lua-cqueues, lua-luv) are installed, the real lsocket if LSOCKET_REAL names its
# lsocket.so; each missing one is reported and left out (in --smoke, a missing cqueues or luv
# fails the run: `make deps` installs them). Prints the generator's lines, then
# per cell each server's msgs/s and server CPU ns per message, and lsocket-on-conch's and
# conch's ratios to the best of cqueues and luv (msgs/s: higher is better; CPU: lower).
# BENCH_TSV=path also writes each measurement as rows (bench/bench_tsv.sh): msgs_per_s,
# server_cpu_ns_per_msg and p99_us, cell "tcp C x SIZE", impl the server.
set -euo pipefail
smoke=0
if [[ ${1:-} == --smoke ]]; then smoke=1; shift; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/bench_tsv.sh"
B=$(cd "${1:-$ROOT/build}" && pwd)
SECS=${SECS:-2}
RUNS=${RUNS:-1}
CONNS=${CONNS:-"16 256"}
SIZES=${SIZES:-"64 16384"}
SERVERS=${SERVERS:-"conch lsocket cqueues luv real"}
# Smoke: every server for a moment at each size (the real lsocket only when LSOCKET_REAL is set).
if ((smoke)); then SECS=0.3; CONNS=4; SIZES="64 16384"; SERVERS="conch lsocket cqueues luv real"; fi
LUA=${LUA:-lua5.4}
gen=$B/bench/conch_bench_sock_loadgen
[[ -x $gen ]] || { echo "no $gen: build conch_bench_sock_loadgen first"; exit 1; }
pin_srv=(); pin_gen=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then pin_srv=(taskset -c 0); pin_gen=(taskset -c 1); fi

work=$(mktemp -d)
pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/real"
[[ -n ${LSOCKET_REAL:-} ]] && ln -s "$(readlink -f "$LSOCKET_REAL")" "$work/real/lsocket.so"

# cpath_for SERVER: the LUA_CPATH it runs with (empty: not available here).
cpath_for() {
  case $1 in
    conch | lsocket) echo "$B/lua/?.so" ;;
    real) [[ -n ${LSOCKET_REAL:-} ]] && echo "$work/real/?.so" ;;
    cqueues | luv) LUA_CPATH=";;" "$LUA" -e "require '$1'" 2>/dev/null && echo ";;" ;;
  esac
  return 0
}
servers=()
for s in $SERVERS; do
  if [[ -n $(cpath_for "$s") ]]; then servers+=("$s")
  elif ((smoke)) && [[ $s == cqueues || $s == luv ]]; then
    echo "lua-$s is not installed (a DEBIAN_PACKAGES dependency): run make deps"; exit 1
  else echo "note: $s not available here, left out"; fi
done

results=$work/results
for run in $(seq "$RUNS"); do
  for c in $CONNS; do
    for size in $SIZES; do
      for s in "${servers[@]}"; do
        port=$((20000 + RANDOM % 20000))
        impl=$s; [[ $s == real ]] && impl=lsocket
        : > "$work/log"
        LUA_CPATH=$(cpath_for "$s") "${pin_srv[@]}" "$LUA" "$ROOT/bench/lua/echo_server.lua" "$impl" "tcp:$port" > "$work/log" 2>&1 &
        pid=$!
        for _ in $(seq 200); do grep -q ready "$work/log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
        grep -q ready "$work/log" || { echo "server $s did not start:"; cat "$work/log"; exit 1; }
        line=$("${pin_gen[@]}" "$gen" "tcp:127.0.0.1:$port" "$c" "$size" 1 "$SECS" "$pid")
        echo "run=$run server=$s $line" | tee -a "$results"
        for m in msgs_per_s:msgs/s server_cpu_ns_per_msg:ns/msg p99_us:us; do
          tsv_row "${m%%:*}" "tcp $c x $size" "$s" "$run" "$(kv "${m%%:*}" "$line")" "${m#*:}"
        done
        kill $pid 2>/dev/null || echo "note: server $s had exited by the end of its cell"
        wait $pid 2>/dev/null || true
        pid=""
      done
    done
  done
done
((smoke)) && exit 0

echo
echo "TCP, one request in flight; ${SECS}s per cell, $RUNS round(s); server on CPU 0, generator on CPU 1;"
echo "load $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: compare ratios within a run, not absolute figures)"
awk '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; ++i) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; --j) a[j + 1] = a[j]; a[j + 1] = t }
    return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
  }
  { delete v
    for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
    key = v["conns"] "x" v["size"]
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    s = v["server"]; if (!(s in known)) { known[s] = 1; names[ns++] = s }
    m[key, s] = m[key, s] " " v["msgs_per_s"]; cpu[key, s] = cpu[key, s] " " v["server_cpu_ns_per_msg"] }
  END {
    head = sprintf("%-10s", "conns x B")
    for (j = 0; j < ns; ++j) head = head sprintf(" | %-20s", names[j] " msgs/s ns/msg")
    print head " | lsocket/best msgs cpu | conch/best msgs cpu"
    for (i = 0; i < n; ++i) {
      k = order[i]; line = sprintf("%-10s", k); best = 0; bestcpu = 0
      for (j = 0; j < ns; ++j) {
        s = names[j]; mm = median(m[k, s]); cc = median(cpu[k, s]); M[s] = mm; C[s] = cc
        line = line sprintf(" | %9.0f %10.0f", mm, cc)
        if ((s == "cqueues" || s == "luv") && mm > best) { best = mm; bestcpu = cc }
      }
      if (best > 0)
        line = line sprintf(" | %5.2f %5.2f | %5.2f %5.2f", M["lsocket"] / best, C["lsocket"] / bestcpu,
                            M["conch"] / best, C["conch"] / bestcpu)
      print line
    }
  }' "$results"
