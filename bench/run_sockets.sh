#!/bin/bash
# bench/run_sockets.sh: the socket echo matrix (issue 4), conch vs epoll vs liburing.
#
#   bench/run_sockets.sh [--smoke] [BENCH_BUILD_DIR]      (default: build/bench)
#   SECS=3 RUNS=3 bench/run_sockets.sh build-rel/bench    (seconds per cell, default 2;
#                                                          rounds of the whole matrix, default 1;
#                                                          WARM=0 skips the warm-up pass)
#
# Each server runs pinned to CPU 0, the load generator (conch_bench_sock_loadgen)
# to CPU 1: 1, 16 and 256 connections; 64 B request/response, 16 KiB
# request/response, 16 KiB pipelined (16 in flight); TCP loopback and Unix.
# Prints the generator's machine-readable lines, then a table per cell:
# msgs/s, MB/s, p50/p99 latency (us) and server CPU ns per message, and the
# conch/epoll throughput ratio. With RUNS > 1 the matrix is run that many
# times (servers in turn within each cell) and the table shows medians, the
# ratio with its min..max over the rounds, conch/epoll CPU per message, and
# the plain liburing server's throughput and CPU per message over epoll's
# (what io_uring itself gives on this kernel, before any of conch's own costs).
set -euo pipefail
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
B=${1:-build/bench}
SECS=${SECS:-2}
CONNS=${CONNS:-"1 16 256"}
WORKLOADS=${WORKLOADS:-"64:1 16384:1 16384:16"}
TRANSPORTS=${TRANSPORTS:-"tcp unix"}
SERVERS=${SERVERS:-"conch epoll uring"}
RUNS=${RUNS:-1}
WARM=${WARM:-1}   # seconds of the warm-up pass before each measured cell (0: none)
if [ $smoke = 1 ]; then SECS=0.3; CONNS="4"; WORKLOADS="64:1 16384:4"; WARM=0; fi
ncpu=$(nproc)
pin_srv=(); pin_gen=()
if command -v taskset >/dev/null && [ "$ncpu" -ge 2 ]; then pin_srv=(taskset -c 0); pin_gen=(taskset -c 1); fi

declare -A bin=([conch]=$B/conch_bench_sock_echo [epoll]=$B/conch_bench_sock_epoll_server
                [uring]=$B/conch_bench_sock_uring_server)
results=$(mktemp)
pid=""
# A failed cell (the load generator exits 1 on a wrong echo) ends the script:
# stop its server too.
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$results" /tmp/conch-bench-$$-*' EXIT

# start_server SRV TR: starts SRV for transport TR; sets pid and target.
start_server() {
  local srv=$1 tr=$2 spec log
  for attempt in 1 2 3; do  # a random port may be taken: try another
    if [ "$tr" = tcp ]; then spec="tcp:$((20000 + RANDOM % 20000))"; target="tcp:127.0.0.1:${spec#tcp:}"
    else spec="unix:/tmp/conch-bench-$$-$srv.sock"; target="$spec"; fi
    log=/tmp/conch-bench-$$-$srv.log
    : > "$log"  # emptied here, not by the child's redirect: an earlier cell's "ready" must not count
    "${pin_srv[@]}" "${bin[$srv]}" "$spec" > "$log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
      if grep -q ready "$log" 2>/dev/null || ! kill -0 $pid 2>/dev/null; then break; fi
      sleep 0.05
    done
    if grep -q ready "$log"; then return 0; fi
    kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  done
  echo "server $srv did not start:"; cat "$log"; exit 1
}

# Servers take turns cell by cell, each started fresh for its cell, so the
# ratios compare measurements taken seconds apart (this machine's load drifts
# over minutes) and no server carries state from one cell into the next.
for run in $(seq "$RUNS"); do
for tr in $TRANSPORTS; do
  for c in $CONNS; do
    for w in $WORKLOADS; do
      size=${w%:*}; depth=${w#*:}
      for srv in $SERVERS; do
        start_server "$srv" "$tr"
        # A throwaway pass first, on connections of its own: a long-running
        # server has served connections before. It found the cold-start cost
        # the runtime now avoids: conch's first 256 connections in a process
        # grew the descriptor table after the loop thread had started and ran
        # tcp 256 x 16 KiB x 16 at 113-137k msgs/s, any later set at 153-170k
        # (src/README.md, Start-up). The C servers' state is static.
        [ "$WARM" != 0 ] && "${pin_gen[@]}" "$B/conch_bench_sock_loadgen" "$target" "$c" "$size" "$depth" "$WARM" > /dev/null
        # Exit 2: nothing listened at the target (seen in CI: a reference
        # server that had said "ready" refused connections for 2 s). Say what
        # the server left in its log, start it again once; exit 1 (a wrong
        # echo) still fails at once.
        rc=0
        line=$("${pin_gen[@]}" "$B/conch_bench_sock_loadgen" "$target" "$c" "$size" "$depth" "$SECS" "$pid") || rc=$?
        if [ $rc = 2 ]; then
          echo "cell $srv $tr $c x $size: nothing listened at $target (server $(kill -0 $pid 2>/dev/null && echo alive || echo gone)); log:" >&2
          cat /tmp/conch-bench-$$-$srv.log >&2
          kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
          start_server "$srv" "$tr"
          rc=0
          line=$("${pin_gen[@]}" "$B/conch_bench_sock_loadgen" "$target" "$c" "$size" "$depth" "$SECS" "$pid") || rc=$?
        fi
        [ $rc = 0 ] || exit $rc
        echo "run=$run server=$srv transport=$tr $line" | tee -a "$results"
        kill $pid; wait $pid 2>/dev/null || true
        pid=""
      done
    done
  done
done
done

[ $smoke = 1 ] && exit 0
echo
echo "server CPU pinned to 0, generator to 1; ${SECS}s per cell; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v runs="$RUNS" '
  function median(list,   a, n, i, j, t) {  # of a space-separated list of numbers
    n = split(list, a, " ")
    for (i = 2; i <= n; ++i) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; --j) a[j + 1] = a[j]; a[j + 1] = t }
    return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
  }
  { delete v
    for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
    key = v["transport"] " " v["conns"] " " v["size"] "x" v["depth"]
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    s = v["server"]; r = v["run"]
    m[key, s] = m[key, s] " " v["msgs_per_s"]; mb[key, s] = mb[key, s] " " v["MB_per_s"]
    p50[key, s] = p50[key, s] " " v["p50_us"]; p99[key, s] = p99[key, s] " " v["p99_us"]
    cpu[key, s] = cpu[key, s] " " v["server_cpu_ns_per_msg"]
    got[key, s, r] = v["msgs_per_s"]; gcpu[key, s, r] = v["server_cpu_ns_per_msg"] }
  END {
    printf "%-22s | %-38s | %-38s | %-38s | %-16s | %-15s | %-16s | %s\n", "transport conns msg", "conch msgs/s MB/s p50/p99us ns/msg",
           "epoll", "uring", "conch/epoll msgs", "conch/epoll cpu", "uring/epoll msgs", "uring/epoll cpu"
    for (i = 0; i < n; ++i) {
      k = order[i]; line = sprintf("%-22s", k)
      split("conch epoll uring", sv, " ")
      for (j = 1; j <= 3; ++j)
        line = line sprintf(" | %9.0f %7.1f %6.1f/%-7.1f %6.0f", median(m[k, sv[j]]), median(mb[k, sv[j]]),
                            median(p50[k, sv[j]]), median(p99[k, sv[j]]), median(cpu[k, sv[j]]))
      rl = ""; cl = ""; ul = ""; uc = ""; lo = 1e9; hi = 0
      for (r = 1; r <= runs; ++r) {
        if (got[k, "epoll", r] > 0 && got[k, "conch", r] != "") {
          q = got[k, "conch", r] / got[k, "epoll", r]; rl = rl " " q
          if (q < lo) lo = q; if (q > hi) hi = q
        }
        if (gcpu[k, "epoll", r] > 0 && gcpu[k, "conch", r] != "") cl = cl " " gcpu[k, "conch", r] / gcpu[k, "epoll", r]
        if (got[k, "epoll", r] > 0 && got[k, "uring", r] != "") ul = ul " " got[k, "uring", r] / got[k, "epoll", r]
        if (gcpu[k, "epoll", r] > 0 && gcpu[k, "uring", r] != "") uc = uc " " gcpu[k, "uring", r] / gcpu[k, "epoll", r]
      }
      ratio = rl == "" ? "-" : (runs > 1 ? sprintf("%.2f (%.2f..%.2f)", median(rl), lo, hi) : sprintf("%.2f", median(rl)))
      cr = cl == "" ? "-" : sprintf("%.2f", median(cl))
      ur = ul == "" ? "-" : sprintf("%.2f", median(ul))
      ucr = uc == "" ? "-" : sprintf("%.2f", median(uc))
      print line " | " sprintf("%-16s", ratio) " | " sprintf("%-15s", cr) " | " sprintf("%-16s", ur) " | " ucr
    }
  }' "$results"
