#!/usr/bin/env bash
# bench/report.sh
# `make bench`: runs every benchmark family in bench/ and writes bench/report/
# (report.md with one table per family, one PNG plot per family).
#
#   bench/report.sh BUILD_DIR            (a Release build with the bench targets; `make bench` makes it)
#   QUICK=1 bench/report.sh BUILD_DIR    the same report at small sizes, one round: a few minutes
#   FAMILIES="channels sockets" ...      only these families (default: all of FAMILIES below)
#   OUT=dir                              where the report goes (default: bench/report)
#   BENCH_NOTE="..."                     a line for the report's head (what else ran meanwhile)
#   RUNS=n                               rounds of every family (default: 5 for channels, pipeline
#                                        and Lua, 3 for the socket and Lua echo matrices; QUICK: 1)
#   SLUA=path  LSOCKET_REAL=path        the program's and the Lua echo family's optional peers
#
# Each family runs its own script (run_*.sh), which interleaves the peers cell
# by cell, so drifting load spreads over every implementation. Every script
# takes BENCH_TSV and writes each measurement as a row "metric cell impl run
# value unit" as it goes (bench/bench_tsv.sh); the tables are built from those
# rows, so a cell or implementation a script gained since is shown too. A family
# whose script fails or writes no rows is reported as "not measured: <reason>",
# an implementation it names but did not measure as "IMPL: not measured: <reason>",
# never left out. Where an issue names targets, each is judged per cell from
# the medians (rules in describe_NAME; see judge). Rerunning replaces the
# report; nothing in it is edited by hand. The log of every family's script is
# kept in OUT/logs/.
#
# Adding a family: write describe_NAME (sets the metadata below) and run_NAME
# (writes $tsv; its human output goes to $log), and add NAME to FAMILIES.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:?usage: bench/report.sh BUILD_DIR}" && pwd)
B=$BUILD/bench
OUT=${OUT:-$ROOT/bench/report}
QUICK=${QUICK:-0}
FAMILIES=${FAMILIES:-"channels pipeline lua sockets program program_server lua_echo ipc nats"}
command_line=${BENCH_COMMAND:-"QUICK=$QUICK bench/report.sh $*"}  # the Makefile names itself
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Replaces only an earlier report (or an empty or new directory), nothing else.
if [[ -d $OUT && -n $(ls -A "$OUT") && ! -f $OUT/report.md ]]; then
  echo "report: $OUT holds something other than a report; not replacing it" >&2; exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/data"

q() { [[ $QUICK != 0 ]]; }  # true in a QUICK run

# Awk functions every table, plot and judgement shares (prepended to their programs):
# median(k): of the space-separated values in vals[k]; columns(impls): the implementations
# present (have[]), those named in impls first, then any other in the order first seen
# (iorder[0..nio-1]): a cell a script gained since this file was written is shown, not dropped.
AWK_LIB='
  function median(k,   n, a, i, j, t) {
    n = split(vals[k], a, " ")
    for (i = 2; i <= n; ++i) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; --j) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function columns(impls,   ni, I, j, m, named) {
    ni = split(impls, I, " "); m = 0
    for (j = 1; j <= ni; ++j) { named[I[j]] = 1; if (I[j] in have) C[++m] = I[j] }
    for (j = 0; j < nio; ++j) if (!(iorder[j] in named)) C[++m] = iorder[j]
    return m
  }
  function saw(impl) { if (!(impl in have)) { have[impl] = 1; iorder[nio++] = impl } }
'

# ---- the families ----
# describe_NAME sets: title; about (one paragraph: what is measured, how to
# read it); metrics (the metrics tabulated, the first plotted); impls (column
# order); conch_impls (conch's own columns: one colour in the plot); ratios
# ("a:b ...": how many times faster a is than b, per cell); est (seconds, a
# guess for the time left); expect (rows of the first metric when complete);
# optionally targets_about and rules (the issue's targets, judged by judge).
# absent_NAME IMPL (optional) says why an implementation has no row.

describe_channels() {
  title="Channel workloads A-F (C++ conch vs Go vs Boost.Fiber vs Asio)"
  about="bench/run_channels.sh: A ping-pong, B SPSC over a 1024 buffer, C 4x4 MPMC, D select over two channels, E spawning go blocks, F 100k timeouts (total ms). conch1/conch2: runtime threads; go1/go2: GOMAXPROCS; fiber: Boost.Fiber on one thread; asio1: Asio's experimental channel with C++20 coroutines on one io_context thread (its D: a parallel group of both receives, as Asio has no select; see bench/asio_workloads.cpp). Wall time per operation."
  metrics="time cpu"; impls="conch1 conch2 go1 go2 fiber asio1"; conch_impls="conch1 conch2"
  ratios="conch1:go1 conch2:go2 conch1:fiber conch1:asio1"
  targets_about="issue 2's, as bench/run_channels.sh judges them from this run (ratio = conch's time over the peer's: below the target is met)."
  if q; then CH_RUNS=1 CH_SCALE=50; else CH_RUNS=${RUNS:-5} CH_SCALE=1; fi
  expect=$((CH_RUNS * 36)); est=$((CH_RUNS * 36 * $(q && echo 1 || echo 3)))
}
absent_channels() {
  case $1 in
    go*) echo "no conch_bench_go (Debian's golang-go is not installed)" ;;
    fiber) echo "no conch_bench_fiber (libboost-fiber1.81-dev is not installed)" ;;
    asio1) echo "no conch_bench_asio (boost/asio/experimental/channel.hpp, libboost1.81-dev, is not installed)" ;;
    *) echo "no row in this run (log: logs/channels.log)" ;;
  esac
}
run_channels() {
  BUILD_DIR=$BUILD RESULTS=$OUT/data/channels-raw.txt RUNS=$CH_RUNS SCALE=$CH_SCALE \
    BENCH_TSV=$tsv bash "$ROOT/bench/run_channels.sh"
}
# The script's own verdicts against issue 2's targets (time ratios: below the target is met).
targets_channels() {
  echo '```'
  awk '/^[A-F]_/ { w = $1 } / target <=? / { print w ": " $0 }' "$log" | sed 's/  */ /g'
  echo '```'
}

describe_pipeline() {
  title="Pipeline scaling (conch::pipeline, 2 runtime threads)"
  about="bench/ops_bench.cpp: pipeline (a trivial transform: the handoffs' cost), pipeline_1us (~1 us of work an item: the parallel speed-up) and mult (8 taps), with n = 1, 2, 4 workers, runs alternating. ns per item."
  metrics="time"; impls="n=1 n=2 n=4 taps=8"; conch_impls="n=1 n=2 n=4 taps=8"
  ratios="n=2:n=1 n=4:n=1"
  if q; then PL_RUNS=1 PL_ITEMS=100000; else PL_RUNS=${RUNS:-5} PL_ITEMS=1000000; fi
  expect=$((PL_RUNS * 7)); est=$((PL_RUNS * $(q && echo 15 || echo 40)))
}
run_pipeline() {
  "$B/conch_bench_ops" "$PL_RUNS" "$PL_ITEMS" | tee /dev/stderr | awk -v OFS='\t' '
    /^bench=/ && /,run / {
      for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = substr($i, length(kv[1]) + 2) }
      split(v["param"], p, ","); impl = p[1]; run[$2]++
      print "time", v["bench"], impl, run[$2], v["value"], v["unit"]; fflush() }' >"$tsv" 2>/dev/null
}

describe_lua() {
  title="Lua channels (conch's Lua vs C++ conch vs Go, one thread)"
  about="bench/run_lua.sh: A ping-pong, B SPSC over a 1024 buffer; lua-embed: conch_bench_lua (Lua states in a C++ program), lua-stock: the stock lua5.4 with require 'conch'; conch1: the same workload in C++; go1: Go at GOMAXPROCS=1. Wall ns per operation."
  metrics="time cpu"; impls="lua-embed lua-stock conch1 go1"; conch_impls="lua-embed lua-stock conch1"
  ratios="lua-embed:go1 lua-stock:go1 lua-embed:conch1"
  targets_about="issue 5's, as bench/run_lua.sh prints them (time ratios, wall | cpu: below the target is met)."
  if q; then LU_RUNS=1 LU_NA=50000 LU_NB=500000; else LU_RUNS=${RUNS:-5} LU_NA=1000000 LU_NB=10000000; fi
  expect=$((LU_RUNS * 8)); est=$((LU_RUNS * $(q && echo 10 || echo 30)))
}
run_lua() {
  BUILD_DIR=$BUILD RUNS=$LU_RUNS NA=$LU_NA NB=$LU_NB BENCH_TSV=$tsv bash "$ROOT/bench/run_lua.sh"
}
# The script's ratio lines (wall | cpu) against issue 5's targets.
targets_lua() {
  echo '```'
  grep -E '^[AB]: ' "$log" || true
  echo '```'
}

describe_sockets() {
  title="Socket echo (conch vs epoll, liburing, Go net, Asio epoll and io_uring)"
  about="bench/run_sockets.sh: cells are transport, connections x message bytes x messages in flight; every server pinned to CPU 0, the load generator (which checks every echoed byte) to CPU 1. The plain one-buffer epoll loop is the limit, not a peer (issue 15). msgs/s (higher is better), then the server's CPU ns per message."
  metrics="msgs_per_s server_cpu_ns_per_msg p99_us"
  impls="conch epoll uring go asio_epoll asio_uring"; conch_impls="conch"
  ratios="conch:epoll conch:uring conch:go conch:asio_epoll conch:asio_uring"
  targets_about="issue 15's, judged from the medians below (a ratio is conch's advantage: above 1, conch is better)."
  if q; then SO_ENV=(SECS=1 WARM=0 RUNS=1 CONNS=16 WORKLOADS="64:1 16384:16"); SO_CELLS=4 SO_RUNS=1 SO_SECS=2
  else SO_RUNS=${RUNS:-3}; SO_ENV=(SECS=2 WARM=1 RUNS=$SO_RUNS); SO_CELLS=18 SO_SECS=4; fi
  expect=$((SO_CELLS * SO_RUNS * 6)); est=$((expect * SO_SECS))
}
run_sockets() {
  env "${SO_ENV[@]}" BENCH_TSV="$tsv" bash "$ROOT/bench/run_sockets.sh" "$B"
}
# targets_NAME (optional): markdown lines judging the family's medians against its issue's targets.
targets_sockets() {
  awk -F'\t' "$AWK_LIB"'
    $1 == "msgs_per_s" || $1 == "server_cpu_ns_per_msg" {
      if (!($2 in seen)) { seen[$2] = 1; cells[nc++] = $2 }
      vals[$1 SUBSEP $2 SUBSEP $3] = vals[$1 SUBSEP $2 SUBSEP $3] " " $5; have[$3] = 1 }
    # judge(name, want, cell, ratio): counts a cell against one target, keeping the misses.
    function judge(name, want, cell, r) {
      if (!(name in order)) { order[name] = ++nt; names[nt] = name }
      tot[name]++
      if (r < want) { miss[name]++; list[name] = list[name] (list[name] ? "; " : "") cell sprintf(" %.2f", r) }
    }
    END {
      for (c = 0; c < nc; ++c) {
        cell = cells[c]; split(cell, f, " "); conns = f[2]; size = f[4]
        cm = median("msgs_per_s" SUBSEP cell SUBSEP "conch"); if (cm <= 0) continue
        np = split("uring go asio_epoll asio_uring", P, " ")
        for (j = 1; j <= np; ++j) if (P[j] in have) {
          pm = median("msgs_per_s" SUBSEP cell SUBSEP P[j]); if (pm > 0) judge("conch msgs/s >= 1.00x " P[j] " in every cell", 1.0, cell, cm / pm) }
        if ("epoll" in have) {
          em = median("msgs_per_s" SUBSEP cell SUBSEP "epoll")
          if (em > 0) {
            judge("conch msgs/s >= 0.95x epoll in every cell", 0.95, cell, cm / em)
            if (size == 64 || conns == 1) judge("conch msgs/s >= 1.00x epoll in every 64-byte and 1-connection cell", 1.0, cell, cm / em)
          }
        }
        if (conns == 256) {
          cc = median("server_cpu_ns_per_msg" SUBSEP cell SUBSEP "conch")
          np = split("epoll uring go asio_epoll asio_uring", P, " ")
          for (j = 1; j <= np; ++j) if (P[j] in have) {
            pc = median("server_cpu_ns_per_msg" SUBSEP cell SUBSEP P[j])
            # CPU: lower is better, so the ratio judged is the peer over conch.
            if (cc > 0 && pc > 0) judge("server CPU per message <= " P[j] "\047s at 256 connections", 1.0, cell, pc / cc) }
        }
      }
      for (t = 1; t <= nt; ++t) {
        n = names[t]
        printf "- %s: %s", n, miss[n] ? sprintf("**MISS** in %d of %d cells (%s)", miss[n], tot[n], list[n]) : sprintf("met in all %d cells", tot[n])
        print ""
      }
      if (nt == 0) print "- (no cell to judge)"
    }' "$OUT/data/sockets.tsv"
}

describe_program() {
  title="The conch program's worker pool (jobs/s, vs slua)"
  about="bench/run_program.sh: a handler submitting tiny string jobs to Lua workers (-w 2, or 1): batch (all submitted, then collected), 16 in flight, one at a time (serial), inline (the worker function called in a plain loop: the pool's cost), and ~100 us CPU-bound jobs on 1 and 2 workers. jobs/s (higher is better); slua runs the same handler and worker where SLUA names an slua binary (issue 14). parallelism: the loops' CPU time over the elapsed time."
  metrics="jobs_per_s parallelism"; impls="conch slua"; conch_impls="conch"; ratios="conch:slua"
  targets_about="issue 14's, judged from the medians below."
  rules="jobs/s >= 3x slua (batch and 16 in flight);jobs_per_s;conch;slua;>=;3;^(batch|inflight16)_w2$
jobs/s >= 10x one at a time (batch over serial);jobs_per_s;conch@batch_w2;conch@serial_w2;>=;10
jobs/s >= 10x one at a time (16 in flight over serial);jobs_per_s;conch@inflight16_w2;conch@serial_w2;>=;10
CPU-bound jobs: 2 workers >= 1.8x one;jobs_per_s;conch@cpu_w2;conch@cpu_w1;>=;1.8"
  if q; then PR_JOBS=10000 PR_CPU=400; else PR_JOBS=100000 PR_CPU=4000; fi
  expect=$((${SLUA:+3} + 6)); est=$(q && echo 15 || echo 60)
}
run_program() {
  CONCH=$BUILD/lua/conch JOBS=$PR_JOBS CPU_JOBS=$PR_CPU BENCH_TSV=$tsv bash "$ROOT/bench/run_program.sh"
}
absent_program() { echo "SLUA=/path/to/slua not given (issue 14: slua built outside the checkout)"; }

describe_program_server() {
  title="The conch program's server mode (requests/s, vs slua)"
  about="bench/run_program_server.sh: \`conch --listen\` running a line echo handler (one handler per client, -w 2), 16 and 256 TCP clients with one request in flight each, every reply checked (bench/line_loadgen.c); slua runs the same handler where SLUA names an slua binary. requests/s (higher is better)."
  metrics="req_per_s"; impls="conch slua"; conch_impls="conch"; ratios="conch:slua"
  if q; then PS_REQS=200; else PS_REQS=2000; fi
  expect=$((${SLUA:+2} + 2)); est=$(q && echo 10 || echo 40)
}
run_program_server() {
  CONCH=$BUILD/lua/conch LOADGEN=$B/conch_bench_line_loadgen REQS=$PS_REQS BENCH_TSV=$tsv \
    bash "$ROOT/bench/run_program_server.sh"
}
absent_program_server() { absent_program; }

describe_lua_echo() {
  title="Lua echo servers (conch vs cqueues, luv)"
  about="bench/run_lua_echo.sh: bench/lua/echo_server.lua under the stock lua5.4 on CPU 0, the load generator on CPU 1; TCP, one message in flight. conch: conch's Lua module; lsocket: the lsocket API on conch; cqueues, luv: Debian's lua-cqueues and lua-luv; real: the real lsocket where LSOCKET_REAL names its lsocket.so. msgs/s, then server CPU ns per message, then p99 latency."
  metrics="msgs_per_s server_cpu_ns_per_msg p99_us"; impls="conch lsocket cqueues luv real"; conch_impls="conch lsocket"
  ratios="conch:cqueues conch:luv lsocket:cqueues"
  targets_about="issue 17's, judged from the medians below (\"best\" of cqueues and luv: the higher msgs/s, the lower CPU)."
  rules="conch msgs/s >= 1.2x the best of cqueues and luv;msgs_per_s;conch;max:cqueues,luv;>=;1.2
conch server CPU per message <= 0.6x the best of cqueues and luv;server_cpu_ns_per_msg;conch;min:cqueues,luv;<=;0.6
lsocket-on-conch msgs/s >= cqueues;msgs_per_s;lsocket;cqueues;>=;1
lsocket-on-conch server CPU per message <= cqueues;server_cpu_ns_per_msg;lsocket;cqueues;<=;1"
  if q; then LE_ENV=(SECS=1 CONNS=16); LE_CELLS=2; else LE_ENV=(SECS=2 RUNS=${RUNS:-3}); LE_CELLS=$((4 * ${RUNS:-3})); fi
  # conch and lsocket always run; cqueues and luv where their Debian packages are.
  local k=2 m
  for m in cqueues luv; do LUA_CPATH=";;" lua5.4 -e "require '$m'" 2>/dev/null && k=$((k + 1)); done
  [[ -n ${LSOCKET_REAL:-} ]] && k=$((k + 1))
  expect=$((LE_CELLS * k)); est=$((expect * $(q && echo 1 || echo 3)))
}
run_lua_echo() {
  env "${LE_ENV[@]}" BENCH_TSV="$tsv" bash "$ROOT/bench/run_lua_echo.sh" "$BUILD"
}
absent_lua_echo() {
  case $1 in
    real) echo "LSOCKET_REAL=/path/to/lsocket.so not given" ;;
    cqueues | luv) echo "lua-$1 is not installed (\`make deps\` installs it)" ;;
    *) echo "no row in this run (log: logs/lua_echo.log)" ;;
  esac
}

describe_ipc() {
  title="ipc: node-ipc and ipcIO (conch vs node)"
  about="bench/run_ipc.sh: Unix-socket echo, 1 and 16 clients, 64 B and 4 KiB payloads, 16 events in flight per client. Implementations are protocol_clients-server: node-ipc_node-node (node-ipc both sides), node-ipc_node-conch (the same node-ipc clients against conch's server), node-ipc_conch-conch (conch's C++ client and server); ipcio_* the same for the ipcIO protocol. Round trips/s (every event is echoed), p50/p99 latency, the server's CPU per event where the script measures it, and the replies lost (ipcIO's node peer parses each read alone: a reply split across reads is lost, so its 4 KiB cells may complete nothing)."
  metrics="rt_per_s p99_us p50_us server_cpu_us_per_event lost"
  impls="node-ipc_conch-conch node-ipc_node-conch node-ipc_node-node ipcio_conch-conch ipcio_node-conch ipcio_node-node"
  conch_impls="node-ipc_conch-conch node-ipc_node-conch ipcio_conch-conch ipcio_node-conch"
  ratios="node-ipc_conch-conch:node-ipc_node-node node-ipc_node-conch:node-ipc_node-node ipcio_conch-conch:ipcio_node-node ipcio_node-conch:ipcio_node-node"
  targets_about="issue 18's, judged from the medians below (the Lua cells, where the script has them, are shown in the tables, not judged)."
  rules="node-ipc clients: conch server's events/s >= 1.0x node-ipc server's;rt_per_s;node-ipc_node-conch;node-ipc_node-node;>=;1
node-ipc clients: conch server's CPU per event <= 0.3x node-ipc server's;server_cpu_us_per_event;node-ipc_node-conch;node-ipc_node-node;<=;0.3
node-ipc conch<->conch >= 10x node-ipc<->node-ipc;rt_per_s;node-ipc_conch-conch;node-ipc_node-node;>=;10
ipcIO conch<->conch >= 10x ipcIO node<->node;rt_per_s;ipcio_conch-conch;ipcio_node-node;>=;10
node-ipc conch<->conch p99 < 2000 us at 16 clients;p99_us;node-ipc_conch-conch;;<;2000;^16 x
ipcIO conch<->conch p99 < 2000 us at 16 clients;p99_us;ipcio_conch-conch;;<;2000;^16 x"
  if q; then IP_ENV=(N=500 IPCIO_SECS=0.5); else IP_ENV=(N=5000 IPCIO_SECS=2); fi
  expect=24; est=$(q && echo 90 || echo 240)
}
run_ipc() {
  env "${IP_ENV[@]}" BENCH_TSV="$tsv" bash "$ROOT/bench/run_ipc.sh" "$BUILD"
}
absent_ipc() {
  case $1 in
    ipcio_node-*) echo "node was not found (ipcIO's node peer, tests/ipcio/ipcio_peer.js)" ;;
    *) echo "no row in this run (log: logs/ipc.log)" ;;
  esac
}

describe_nats() {
  title="NATS client (conch vs the official JavaScript client)"
  about="bench/run_nats.sh: one local nats-server; 1 publisher -> 1 subscriber messages/s at 16 B and 1 KiB, and request/reply round trips/s; conch's C++ client (bench/nats_bench.cpp) and the official JS client (bench/nats/bench.js) in turn. Higher is better."
  metrics="per_s"; impls="conch js"; conch_impls="conch"; ratios="conch:js"
  targets_about="issue 16's, judged from the medians below."
  rules="conch >= 2x the JS client in every cell;per_s;conch;js;>=;2"
  if q; then NA_ENV=(N=20000 RR=2000); else NA_ENV=(N=200000 RR=20000); fi
  expect=6; est=$(q && echo 20 || echo 60)
}
run_nats() {
  env "${NA_ENV[@]}" BENCH_TSV="$tsv" bash "$ROOT/bench/run_nats.sh" "$BUILD"
}
absent_nats() { echo "the JS client did not run (tests/nats/js/install.sh; log: logs/nats.log)"; }

# describe FAMILY: its describe_NAME, with the optional settings cleared first.
describe() { rules=""; targets_about=""; "describe_$1"; }

# ---- progress ----

fmt_secs() { local s=${1%.*}; ((s < 0)) && s=0; if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }
tty=0; [[ -t 2 ]] && tty=1
declare -A est_of expect_of
total_est=0
for f in $FAMILIES; do
  declare -F "describe_$f" >/dev/null || { echo "report: no family '$f' (no describe_$f in bench/report.sh)" >&2; exit 2; }
  describe "$f"; est_of[$f]=$est; expect_of[$f]=$expect; total_est=$((total_est + est))
done
start_all=$(date +%s)
spent_est=0   # the estimates of the families already run
spent_real=0  # and the seconds they took

# progress FAMILY I N STARTED DONE LAST: one line on the terminal
progress() {
  local f=$1 i=$2 n=$3 t0=$4 done=$5 last=$6 now el left_f left_rest scale
  now=$(date +%s); el=$((now - t0))
  if ((done > 0)); then left_f=$((el * (expect_of[$f] - done) / done)); else left_f=$((est_of[$f] - el)); fi
  ((left_f < 0)) && left_f=0
  # The families still to come: their guesses, scaled by how the guesses did so far.
  left_rest=$((total_est - spent_est - est_of[$f]))
  if ((spent_est > 0)); then scale="$spent_real/$spent_est"; left_rest=$((left_rest * spent_real / spent_est)); fi
  local msg
  msg=$(printf '[%d/%d %s] %d/%d measured, last: %s | %s elapsed, ~%s left' "$i" "$n" "$f" "$done" "${expect_of[$f]}" \
    "${last:0:48}" "$(fmt_secs $((now - start_all)))" "$(fmt_secs $((left_f + left_rest)))")
  if ((tty)); then printf '\r\033[K%s' "$msg" >&2; else echo "$msg" >&2; fi
}

declare -A status_of
i=0; n=$(wc -w <<<"$FAMILIES")
for f in $FAMILIES; do
  i=$((i + 1))
  describe "$f"
  tsv=$OUT/data/$f.tsv; log=$OUT/logs/$f.log
  : >"$tsv"
  first=${metrics%% *}
  echo "report: [$i/$n] $f: $title (log: ${log#"$ROOT"/})" >&2
  t0=$(date +%s)
  ( "run_$f" ) >"$log" 2>&1 &
  job=$!
  last_done=-1
  while kill -0 $job 2>/dev/null; do
    done_=$(grep -c "^$first	" "$tsv" 2>/dev/null || true)
    lastrow=$(grep "^$first	" "$tsv" 2>/dev/null | tail -n1 | cut -f2,3 | tr '\t' ' ' || true)
    if ((tty)) || [[ $done_ != "$last_done" ]]; then
      progress "$f" "$i" "$n" "$t0" "${done_:-0}" "${lastrow:-starting}"
      last_done=$done_
    fi
    sleep 1
  done
  rc=0; wait $job || rc=$?
  ((tty)) && echo >&2
  took=$(($(date +%s) - t0))
  spent_est=$((spent_est + est_of[$f])); spent_real=$((spent_real + took))
  rows=$(grep -c "^$first	" "$tsv" || true)
  why="its script exited $rc (log: logs/$f.log, last line: $(tail -n1 "$log" | tr -d '|`' | cut -c1-160))"
  if ((rc != 0 && rows == 0)); then
    status_of[$f]="not measured: $why"
  elif ((rc != 0)); then
    # What was measured before the failure is still shown, marked as such.
    status_of[$f]="partly measured ($rows of ${expect_of[$f]}): $why"
  elif ((rows == 0)); then
    status_of[$f]="not measured: its output had no result lines this report could parse (log: logs/$f.log)"
  else
    status_of[$f]=ok
  fi
  echo "report: $f: ${status_of[$f]} ($rows measurements, $(fmt_secs "$took"))" >&2
done

# ---- the report ----

md=$OUT/report.md
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$ROOT" diff --quiet HEAD -- include src channels sockets lua bench 2>/dev/null || rev="$rev (with uncommitted changes)"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# conch benchmark report"
  echo
  echo "Generated by \`${command_line}\` (bench/report.sh); do not edit: rerunning replaces it."
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| commit | $rev |"
  echo "| kernel | $(uname -sr) |"
  echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') |"
  echo "| cores | $(nproc) |"
  echo "| load average (1, 5, 15 min) at the start / end | ${LOAD_START:-?} / $load_end |"
  echo "| wall time | $(fmt_secs $(($(date +%s) - start_all))) |"
  echo "| mode | $(q && echo "QUICK=1: small sizes, one run a cell (spreads need more runs)" || echo "full") |"
  echo
  # A busy machine is said plainly: a one-minute load above half the cores at either end.
  if awk -v a="${LOAD_START%% *}" -v b="${load_end%% *}" -v n="$(nproc)" 'BEGIN { exit !(a > n / 2 || b > n / 2) }'; then
    echo "**The machine was loaded during this run** (load average above, on $(nproc) cores): absolute figures"
    echo "are low and noisy; the ratios, taken seconds apart, are the part to read."
    echo
  fi
  # BENCH_NOTE: one line from whoever ran it (say, what else the machine was doing).
  if [[ -n ${BENCH_NOTE:-} ]]; then echo "$BENCH_NOTE"; echo; fi
  echo "Every table: the median of the runs, then min-max in brackets. Ratio columns \"a / b\" say how"
  echo "many times faster a is than b in that cell (b's time over a's, or a's rate over b's): above 1,"
  echo "a is faster. On a shared or loaded machine, read the spreads before the medians; the ratios"
  echo "compare measurements taken seconds apart (peers interleaved cell by cell)."
  echo
} >"$md"

# table FAMILY METRIC: the markdown table of one metric
table() {
  awk -F'\t' -v metric="$2" -v impls="$impls" -v ratios="$ratios" "$AWK_LIB"'
    function fmt(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
    $1 == metric {
      if (!($2 in seen)) { seen[$2] = 1; cells[nc++] = $2 }
      k = $2 SUBSEP $3; vals[k] = vals[k] " " $5; cnt[k]++; units[$2] = $6; saw($3)
      if (!(k in lo) || $5 + 0 < lo[k]) lo[k] = $5 + 0
      if (!(k in hi) || $5 + 0 > hi[k]) hi[k] = $5 + 0
    }
    END {
      m = columns(impls)
      nr = split(ratios, R, " ")
      head = "| cell | unit"; sep = "| --- | ---"
      for (j = 1; j <= m; ++j) { head = head " | " C[j]; sep = sep " | ---:" }
      for (j = 1; j <= nr; ++j) { split(R[j], ab, ":"); if ((ab[1] in have) && (ab[2] in have)) { head = head " | " ab[1] " / " ab[2]; sep = sep " | ---:" } }
      print head " |"; print sep " |"
      for (c = 0; c < nc; ++c) {
        cell = cells[c]; u = units[cell]; line = "| " cell " | " u
        for (j = 1; j <= m; ++j) {
          k = cell SUBSEP C[j]
          if (cnt[k] == 0) { line = line " | -"; continue }
          med[C[j]] = median(k)
          line = line " | " fmt(med[C[j]]) (cnt[k] > 1 ? " (" fmt(lo[k]) "-" fmt(hi[k]) ")" : "")
        }
        for (j = 1; j <= nr; ++j) {
          split(R[j], ab, ":"); if (!((ab[1] in have) && (ab[2] in have))) continue
          a = cnt[cell SUBSEP ab[1]] ? median(cell SUBSEP ab[1]) : 0; b = cnt[cell SUBSEP ab[2]] ? median(cell SUBSEP ab[2]) : 0
          if (a <= 0 || b <= 0) { line = line " | -"; continue }
          # A rate (.../s): higher is better; anything else (time, CPU, latency): lower is better.
          r = (u ~ /\/s$/) ? a / b : b / a
          line = line " | " sprintf("%.2f", r)
        }
        print line " |"
      }
    }' "$OUT/data/$1.tsv"
}

# judge FAMILY: markdown lines judging the family's medians against $rules (set by describe_NAME),
# one rule a line: "label;metric;A;B;op;want[;cell regex]". A, B: an implementation (judged in
# every cell where both have a median), impl@cell (one comparison across cells), max:i,j or
# min:i,j (the best of several peers: the highest rate, the lowest cost); B empty: A's own
# median against want. op: >= (rates), <= or < (costs). The value judged is A/B (or A).
judge() {
  local rule
  while IFS= read -r rule; do
    [[ -n $rule ]] || continue
    awk -F'\t' -v rule="$rule" "$AWK_LIB"'
      { k = $1 SUBSEP $2 SUBSEP $3; vals[k] = vals[k] " " $5; cnt[k]++; if (!($2 in seen)) { seen[$2] = 1; cells[nc++] = $2 } }
      function med(impl, cell,   k) { k = metric SUBSEP cell SUBSEP impl; return cnt[k] ? median(k) : -1 }
      # val(spec, cell): the median a spec names (-1: none measured)
      function val(spec, cell,   kind, n, L, j, v, best) {
        if (spec ~ /@/) { split(spec, L, "@"); return med(L[1], L[2]) }
        if (spec ~ /^(max|min):/) {
          kind = substr(spec, 1, 3); n = split(substr(spec, 5), L, ","); best = -1
          for (j = 1; j <= n; ++j) { v = med(L[j], cell); if (v >= 0 && (best < 0 || (kind == "max" ? v > best : v < best))) best = v }
          return best
        }
        return med(spec, cell)
      }
      END {
        split(rule, R, ";"); label = R[1]; metric = R[2]; A = R[3]; B = R[4]; op = R[5]; want = R[6] + 0; re = R[7]
        across = A ~ /@/
        for (c = 0; c < (across ? 1 : nc); ++c) {
          cell = across ? "" : cells[c]
          if (!across && re != "" && cell !~ re) continue
          a = val(A, cell); if (a < 0) continue
          if (B == "") r = a; else { b = val(B, cell); if (b <= 0) continue; r = a / b }
          shown = sprintf(B == "" ? "%.0f" : "%.2f", r)
          tot++; ok = op == ">=" ? r >= want : op == "<=" ? r <= want : r < want
          if (!ok) { miss++; list = list (list ? "; " : "") (across ? "" : cell " ") shown }
        }
        if (tot == 0) verdict = "not judged: " (B == "" ? "not measured" : "no cell has both sides measured")
        else if (across) verdict = (miss ? "**MISS** (" : "met (") shown ")"
        else verdict = miss ? sprintf("**MISS** in %d of %d cells (%s)", miss, tot, list) : sprintf("met in all %d cells", tot)
        print "- " label ": " verdict
      }' "$OUT/data/$1.tsv"
  done <<<"$rules"
}

# absent FAMILY: a line for each implementation the family names that this run did not measure,
# with the reason its absent_NAME gives (default: see the log).
absent() {
  local i
  for i in $impls; do
    awk -F'\t' -v i="$i" '$3 == i { found = 1; exit } END { exit !found }' "$OUT/data/$1.tsv" && continue
    echo "- $i: not measured: $(declare -F "absent_$1" >/dev/null && "absent_$1" "$i" || echo "no row in this run (log: logs/$1.log)")"
  done
}

# plot FAMILY: OUT/FAMILY.png of the first metric's medians, conch's bars in one colour
plot() {
  local f=$1 metric=${metrics%% *} dat=$OUT/data/$f-plot.dat
  command -v gnuplot >/dev/null || { echo "(no plot: gnuplot is not installed; \`make deps\` installs gnuplot-nox)"; return 0; }
  # Columns: cell, then one median per implementation present; "-" where a cell lacks one.
  awk -F'\t' -v metric="$metric" -v impls="$impls" "$AWK_LIB"'
    $1 == metric { if (!($2 in seen)) { seen[$2] = 1; cells[nc++] = $2 }; vals[$2 SUBSEP $3] = vals[$2 SUBSEP $3] " " $5; saw($3); units[$6] = 1 }
    END {
      m = columns(impls); line = "cell"
      for (j = 1; j <= m; ++j) line = line "\t" C[j]
      print "# " line
      for (c = 0; c < nc; ++c) {
        line = "\"" cells[c] "\""
        for (j = 1; j <= m; ++j) { k = cells[c] SUBSEP C[j]; line = line "\t" (k in vals ? median(k) : "-") }
        print line
      }
    }' "$OUT/data/$f.tsv" >"$dat"
  local cols unit lo hi logscale=""
  cols=$(head -n1 "$dat" | tr '\t' ' ' | cut -d' ' -f3-)
  unit=$(awk -F'\t' -v m="$metric" '$1 == m { u[$6] = 1 } END { for (k in u) s = s (s ? ", " : "") k; print s }' "$OUT/data/$f.tsv")
  read -r lo hi < <(awk 'NR > 1 { for (i = 2; i <= NF; ++i) if ($i != "-" && $i + 0 > 0) { if (!lo || $i + 0 < lo) lo = $i + 0; if ($i + 0 > hi) hi = $i + 0 } } END { print lo + 0, hi + 0 }' "$dat")
  # Log scale when the bars span more than 20x (cells of different sizes or units).
  awk -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(lo > 0 && hi / lo > 20) }' && logscale=1
  local peers_palette=("#4c72b0" "#55a868" "#8172b2" "#64b5cd" "#937860" "#8c8c8c" "#ccb974")
  local plots="" j=0 p=0 c colour fill
  for c in $cols; do
    j=$((j + 1))
    if [[ " $conch_impls " == *" $c "* ]]; then
      colour="#dd5500"; fill="solid 0.9 border lc rgb '#000000'"
      # conch's second and later columns: the same colour, patterned, so they stay apart.
      # (gnuplot's patterns 4-7 are hatchings: the others are empty or solid.)
      [[ $c != "${conch_impls%% *}" ]] && fill="pattern $((4 + j % 4)) border lc rgb '#dd5500'"
    else colour=${peers_palette[$((p % ${#peers_palette[@]}))]}; p=$((p + 1)); fill="solid 0.75 border lc rgb '#000000'"; fi
    plots+="${plots:+, }'$dat' using $((j + 1)):xtic(1) title '$c' lc rgb '$colour' fillstyle $fill"
  done
  local ncells; ncells=$(($(wc -l <"$dat") - 1))
  gnuplot <<EOF
set terminal pngcairo size $((ncells > 8 ? 1400 : 1000)),520 font "sans,10"
set output '$OUT/$f.png'
set title noenhanced "$title\n($(q && echo "QUICK run, " || true)medians; $(date -u +%Y-%m-%d), $(nproc) cores)"
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
set key outside right top noenhanced
set grid ytics
set ylabel noenhanced "$metric ($unit)$([[ $unit == *"/s"* ]] && echo ", higher is better" || echo ", lower is better")"
set xtics rotate by -30 noenhanced
set datafile missing "-"
$([[ -n $logscale ]] && echo "set logscale y" || echo "set yrange [0:*]")
plot $plots
EOF
}

for f in $FAMILIES; do
  describe "$f"
  tsv=$OUT/data/$f.tsv; log=$OUT/logs/$f.log
  {
    echo "## $title"
    echo
    echo "$about"
    echo
    if [[ ${status_of[$f]} != ok ]]; then
      echo "**${status_of[$f]}**"
      echo
      [[ ${status_of[$f]} == partly* ]] || continue
    fi
    if plot "$f" >"$OUT/logs/$f-plot.log" 2>&1 && [[ -s $OUT/$f.png ]]; then
      echo "![$f]($f.png)"
    else
      echo "(plot failed: logs/$f-plot.log)"
    fi
    echo
    if declare -F "targets_$f" >/dev/null; then
      echo "Targets: $targets_about"
      echo
      "targets_$f"
      echo
    elif [[ -n $rules ]]; then
      echo "Targets: $targets_about"
      echo
      judge "$f"
      echo
    fi
    missing=$(absent "$f")
    if [[ -n $missing ]]; then echo "$missing"; echo; fi
    for m in $metrics; do
      grep -q "^$m	" "$OUT/data/$f.tsv" || continue
      echo "**$m**"
      echo
      table "$f" "$m"
      echo
    done
    echo "Raw measurements: [data/$f.tsv](data/$f.tsv); the script's own output: [logs/$f.log](logs/$f.log)."
    echo
  } >>"$md"
done
echo "report: wrote ${md#"$ROOT"/} ($(fmt_secs $(($(date +%s) - start_all))))" >&2
