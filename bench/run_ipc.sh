#!/usr/bin/env bash
# bench/run_ipc.sh
# Issue 18's node-ipc and ipcIO table in one run: node-ipc <-> node-ipc, node-ipc clients -> conch server
# (C++ and Lua), conch Lua <-> conch Lua, conch <-> conch (conch_bench_ipc), and the ipcIO cells
# (conch_bench_ipcio with the node test peer).
#
#   bash bench/run_ipc.sh [BUILD=build]     N=5000 round trips per client per cell (env), IPCIO_SECS=2
#
# Every cell: 64 B and 4 KiB payloads, 1 and 16 clients, 16 events in flight per client; msg/s, p50/p99.
# The node cells' clients are one node process (bench/ipc_node_bench.js), identical for every server;
# the server's CPU per event is printed beside them. The Lua cells are bench/ipc_lua_bench.lua under
# lua5.4 with the built conch.so (the server and the clients are two processes, as in the node cells).
# Run it on a quiet machine for figures to keep.
# BENCH_TSV=path also writes every cell as rows (ipc_tsv below; bench/bench_tsv.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_tsv.sh"
build=$(cd "${1:-build}" && pwd)
N=${N:-5000}
modules=$build/tests/ipc/node/node_modules
node=${NODE:-node}
[ -f "$modules/node-ipc/package.json" ] || { echo "node-ipc is not installed in $modules (configure runs npm ci)" >&2; exit 77; }
sock=/tmp/conch-bench-ipc-run-$$
trap 'rm -f "$sock"' EXIT

# ipc_tsv IMPL: echoes result lines from stdin and writes each as TSV rows: rt_per_s (every
# echoed event is one round trip), p50_us, p99_us, server_cpu_us_per_event and lost, cell "C x B".
ipc_tsv() {
  local l p cell
  while IFS= read -r l; do
    echo "$l"
    [[ $l == bench=* ]] || continue
    p=$(kv param "$l")
    case $p in
      clients:*) cell="${p#clients:}"; cell="${cell%%,*} x ${p##*payload:} B" ;;  # clients:C,payload:B
      */*) cell="${p#*/}"; cell="${cell%%x*} x ${cell#*x}"; cell="${cell%B} B" ;;  # pair/CxBB
      *) cell=$p ;;
    esac
    tsv_row rt_per_s "$cell" "$1" 1 "$(kv value "$l")" rt/s
    tsv_row lost "$cell" "$1" 1 "$(kv lost "$l")" replies  # ipcIO's node peer: replies split across reads
    if [[ $(kv value "$l") == 0 ]]; then continue  # nothing completed: no latency to report
    elif [[ -n $(kv p99_ms "$l") ]]; then
      tsv_row p50_us "$cell" "$1" 1 "$(awk -v v="$(kv p50_ms "$l")" 'BEGIN { print v * 1000 }')" us
      tsv_row p99_us "$cell" "$1" 1 "$(awk -v v="$(kv p99_ms "$l")" 'BEGIN { print v * 1000 }')" us
    else
      tsv_row p50_us "$cell" "$1" 1 "$(kv p50_us "$l")" us
      tsv_row p99_us "$cell" "$1" 1 "$(kv p99_us "$l")" us
    fi
    tsv_row server_cpu_us_per_event "$cell" "$1" 1 "$(kv cpu_us_per_event "$l")" us/event
  done
}

lua=${LUA:-lua5.4}
lua_env=(env "LUA_PATH=$here/../lua/?.lua;;" "LUA_CPATH=$build/lua/?.so")

serve_and_run() {  # $1 = server kind (node|conch|lua), $2 clients, $3 bytes, $4 = client kind (node|lua; node)
  local expect=$(( $2 * N )) out=/tmp/conch-bench-ipc-srv-$$.txt
  rm -f "$sock"
  case "$1" in
    node) "$node" "$here/ipc_node_bench.js" server "$modules" "$sock" "$expect" >"$out" & ;;
    lua) "${lua_env[@]}" "$lua" "$here/ipc_lua_bench.lua" server "$sock" "$expect" >"$out" & ;;
    *) "$build/bench/conch_bench_ipc" --serve "$sock" --expect "$expect" >"$out" & ;;
  esac
  local pid=$!
  for _ in $(seq 1 500); do grep -q ready "$out" 2>/dev/null && break; sleep 0.02; done
  local line
  if [ "${4:-node}" = lua ]; then line=$("${lua_env[@]}" "$lua" "$here/ipc_lua_bench.lua" client "$sock" "$2" "$3" "$N")
  else line=$("$node" "$here/ipc_node_bench.js" client "$modules" "$sock" "$2" "$3" "$N")
  fi
  wait "$pid"
  echo "$line server=$1 $(grep cpu_us_per_event "$out")"
  rm -f "$out"
}

echo "# $(date -u +%FT%TZ) $(uname -r) load: $(cut -d' ' -f1-3 /proc/loadavg) N=$N"
for clients in 1 16; do
  for bytes in 64 4096; do
    serve_and_run node "$clients" "$bytes" | ipc_tsv node-ipc_node-node
    serve_and_run conch "$clients" "$bytes" | ipc_tsv node-ipc_node-conch
    serve_and_run lua "$clients" "$bytes" | ipc_tsv node-ipc_node-lua
    serve_and_run lua "$clients" "$bytes" lua | ipc_tsv node-ipc_lua-lua
  done
done
"$build/bench/conch_bench_ipc" --events "$N" | ipc_tsv node-ipc_conch-conch
"$build/bench/conch_bench_ipcio" "${IPCIO_SECS:-2}" "$here/../tests/ipcio/ipcio_peer.js" |
  while IFS= read -r l; do echo "$l" | ipc_tsv "ipcio_$(kv param "$l" | cut -d/ -f1)"; done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
