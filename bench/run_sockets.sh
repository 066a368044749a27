#!/bin/bash
# bench/run_sockets.sh: the socket echo matrix (issue 4), conch vs epoll, liburing, Go and Asio.
#
#   bench/run_sockets.sh [--smoke] [BENCH_BUILD_DIR]      (default: build/bench)
#   SECS=3 RUNS=3 bench/run_sockets.sh build-rel/bench    (seconds per cell, default 2;
#                                                          rounds of the whole matrix, default 1;
#                                                          WARM=0 skips the warm-up pass)
#   SERVERS="conch epoll go" ...                          (default: all seven; a server whose
#                                                          binary was not built is left out, said)
#   BENCH_TSV=path                                        also write every measurement there as TSV
#                                                          (metric cell impl run value unit; bench/report.sh)
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
# The peers users pick (issue 15): go (net, a goroutine per connection),
# asio_epoll and asio_uring (Boost.Asio C++20 coroutines on either backend);
# the table's last columns give conch's throughput over each of theirs.
set -euo pipefail
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
B=${1:-build/bench}
SECS=${SECS:-2}
CONNS=${CONNS:-"1 16 256"}
WORKLOADS=${WORKLOADS:-"64:1 16384:1 16384:16"}
TRANSPORTS=${TRANSPORTS:-"tcp unix"}
SERVERS=${SERVERS:-"conch epoll uring go asio_epoll asio_uring"}
RUNS=${RUNS:-1}
WARM=${WARM:-1}   # seconds of the warm-up pass before each measured cell (0: none)
if [ $smoke = 1 ]; then SECS=0.3; CONNS="4"; WORKLOADS="64:1 16384:4"; WARM=0; fi
ncpu=$(nproc)
pin_srv=(); pin_gen=()
if command -v taskset >/dev/null && [ "$ncpu" -ge 2 ]; then pin_srv=(taskset -c 0); pin_gen=(taskset -c 1); fi

declare -A bin=([conch]=$B/conch_bench_sock_echo [epoll]=$B/conch_bench_sock_epoll_server
                [uring]=$B/conch_bench_sock_uring_server [go]=$B/conch_bench_sock_go_server
                [asio_epoll]=$B/conch_bench_sock_asio_epoll [asio_uring]=$B/conch_bench_sock_asio_uring)
present=""
for srv in $SERVERS; do
  [ -n "${bin[$srv]:-}" ] || { echo "run_sockets: unknown server $srv" >&2; exit 2; }
  # conch and the C servers are always built; a peer whose toolchain was missing is not.
  if [ -x "${bin[$srv]}" ]; then present="$present $srv"
  elif [ "$srv" = conch ] || [ "$srv" = epoll ] || [ "$srv" = uring ]; then
    echo "run_sockets: ${bin[$srv]} missing: build it first" >&2; exit 1
  else echo "run_sockets: ${bin[$srv]} not built here: $srv left out" >&2; fi
done
SERVERS=${present# }
if [ -n "${BENCH_TSV:-}" ]; then : > "$BENCH_TSV"; fi
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
missed=0
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
        # (Exit 3, no echo within the warm-up, is judged by the measured pass below.)
        if [ "$WARM" != 0 ]; then
          wrc=0; "${pin_gen[@]}" "$B/conch_bench_sock_loadgen" "$target" "$c" "$size" "$depth" "$WARM" > /dev/null || wrc=$?
          [ $wrc = 0 ] || [ $wrc = 3 ] || exit $wrc
        fi
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
        # Exit 3: no echo at all within the window, nothing wrong seen (on a
        # loaded machine, 16 x 16 KiB x 16 took 0.5 s a round trip). The cell
        # is left out, said, and the script ends non-zero after the table.
        if [ $rc = 3 ]; then
          echo "cell $srv $tr $c x $size x $depth: no echo within ${SECS}s (server or machine too slow); left out" >&2
          missed=$((missed + 1))
          kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
          pid=""
          continue
        fi
        [ $rc = 0 ] || exit $rc
        echo "run=$run server=$srv transport=$tr $line" | tee -a "$results"
        if [ -n "${BENCH_TSV:-}" ]; then
          echo "run=$run server=$srv transport=$tr $line" | awk -v OFS='\t' '{
            for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
            cell = v["transport"] " " v["conns"] " x " v["size"] " x " v["depth"]
            print "msgs_per_s", cell, v["server"], v["run"], v["msgs_per_s"], "msgs/s"
            print "server_cpu_ns_per_msg", cell, v["server"], v["run"], v["server_cpu_ns_per_msg"], "ns/msg"
            print "p99_us", cell, v["server"], v["run"], v["p99_us"], "us" }' >> "$BENCH_TSV"
        fi
        kill $pid; wait $pid 2>/dev/null || true
        pid=""
      done
    done
  done
done
done

if [ $smoke = 1 ]; then [ $missed = 0 ] || exit 3; exit 0; fi
echo
echo "server CPU pinned to 0, generator to 1; ${SECS}s per cell; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v runs="$RUNS" -v servers="$SERVERS" '
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
    ns = split(servers, sv, " ")
    head = sprintf("%-22s", "transport conns msg")
    for (j = 1; j <= ns; ++j) head = head sprintf(" | %-38s", j == 1 ? sv[j] " msgs/s MB/s p50/p99us ns/msg" : sv[j])
    head = head sprintf(" | %-16s | %-15s | %-16s | %-15s", "conch/epoll msgs", "conch/epoll cpu", "uring/epoll msgs", "uring/epoll cpu")
    for (j = 1; j <= ns; ++j) if (sv[j] != "conch" && sv[j] != "epoll") head = head sprintf(" | %-16s", "conch/" sv[j] " msgs")
    print head
    for (i = 0; i < n; ++i) {
      k = order[i]; line = sprintf("%-22s", k)
      for (j = 1; j <= ns; ++j)
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
      line = line " | " sprintf("%-16s", ratio) " | " sprintf("%-15s", cr) " | " sprintf("%-16s", ur) " | " sprintf("%-15s", ucr)
      for (j = 1; j <= ns; ++j) {
        if (sv[j] == "conch" || sv[j] == "epoll") continue
        pm = median(m[k, sv[j]])
        line = line " | " sprintf("%-16s", pm > 0 ? sprintf("%.2f", median(m[k, "conch"]) / pm) : "-")
      }
      print line
    }
  }' "$results"
if [ $missed != 0 ]; then echo "run_sockets: $missed cell(s) had no echo within the window; left out above" >&2; exit 3; fi
