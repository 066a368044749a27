#!/bin/bash
# bench/run_program_server.sh: server mode's requests/s, a line echo handler, 16 and 256 clients.
#   CONCH=build/lua/conch LOADGEN=build/bench/conch_bench_line_loadgen REQS=2000 \
#     [CLIENTS="16 256"] [SLUA=/path/to/slua] bench/run_program_server.sh
# Each cell starts `conch --listen 127.0.0.1:0 --handlers C` (C = the client
# count, so every client has its handler at once; -w 2) and runs the load
# generator: C clients, REQS requests each, one in flight per client, every
# reply checked (a wrong or missing one fails the script). Prints
#   bench=program_server param=<cell> value=<requests/s> unit=req/s
# With SLUA, the same handler runs under `slua -p PORT -hp C -wp 2` (slua binds
# 0.0.0.0 and takes a port: SLUA_PORT, default 17341).
# BENCH_TSV=path also writes each cell as a row (bench/bench_tsv.sh): req_per_s "<C> clients" conch|slua.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/bench_tsv.sh"
CONCH=${CONCH:-$HERE/../build/lua/conch}
LOADGEN=${LOADGEN:-$HERE/../build/bench/conch_bench_line_loadgen}
REQS=${REQS:-2000}
CLIENTS=${CLIENTS:-16 256}
SLUA=${SLUA:-}
H=$HERE/program/line_handler.lua
W=$HERE/program/worker.lua
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# run_cell NAME CLIENTS TARGET: the load generator against the running server.
run_cell() {
  local out
  if ! out=$("$LOADGEN" "$3" "$2" "$REQS" 2>"$TMP/gen_err"); then
    cat "$TMP/gen_err" "$TMP/server_err" >&2
    echo "run_program_server.sh: cell $1 failed" >&2
    exit 1
  fi
  local rate; rate=$(sed -n 's/.*requests_per_s=//p' <<<"$out")
  echo "bench=program_server param=$1 value=$rate unit=req/s"
  tsv_row req_per_s "$2 clients" "${1%_c*}" 1 "$rate" req/s
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

for c in $CLIENTS; do
  "$CONCH" --listen 127.0.0.1:0 --handlers "$c" -w 2 "$H" "$W" >/dev/null 2>"$TMP/server_err" &
  SERVER_PID=$!
  addr=
  for _ in $(seq 1 300); do  # wait for its address (bounded: 30 s)
    addr=$(sed -n 's/^conch: listening on //p' "$TMP/server_err")
    [ -n "$addr" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server_err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "run_program_server.sh: the server did not report its address" >&2; exit 1; }
  run_cell "conch_c$c" "$c" "tcp:$addr"
  stop_server
  if [ -n "$SLUA" ]; then
    port=${SLUA_PORT:-17341}
    (cd "$TMP" && exec "$SLUA" -p "$port" -hp "$c" -wp 2 "$H" "$W") >/dev/null 2>"$TMP/server_err" &
    SERVER_PID=$!
    for _ in $(seq 1 300); do  # wait until it accepts (bounded: 30 s), so its start-up is not timed
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server_err" >&2; exit 1; }
      sleep 0.1
    done
    run_cell "slua_c$c" "$c" "tcp:127.0.0.1:$port"
    stop_server
  fi
done
