#!/usr/bin/env bash
# bench/run_channels.sh
# Builds and runs the channel workloads A-F of issue 2 on conch (1 and 2
# runtime threads), Go (GOMAXPROCS 1 and 2), Boost.Fiber (1 thread) and Asio's
# experimental channel (1 thread), RUNS times each, one process per measurement,
# and prints a table of medians, min..max spreads and the conch/Go, conch/Fiber
# and conch/Asio ratios next to the targets.
#
#   bench/run_channels.sh                 # everything, 5 runs (make bench-channels)
#   RUNS=3 WORKLOADS="A B" bench/run_channels.sh
#
# Environment:
#   RUNS=5                     measurements per workload and implementation
#   WORKLOADS="A B C D E F"    which workloads
#   IMPLS="conch1 conch2 go1 go2 fiber asio1"   which implementations (missing
#                              toolchains are skipped with a note)
#   BUILD_DIR=${BUILD_ROOT:-<repo>}/build-bench   CMake build dir (configured Release,
#                              with CMAKE_ARGS, if new)
#   SCALE=1                    divide every workload's default n by this (QUICK runs; F's
#                              total ms then counts fewer timers, for every implementation)
#   TIMEOUT=120                seconds per process; a hang is killed and counted as FAIL
#   RESULTS=<BUILD_DIR>/bench/channels-results.txt   raw result lines (overwritten)
#   NO_BUILD=1                 use the binaries already built
#   BENCH_TSV=path             also write every measurement there as TSV, as it is taken
#                              (metric cell impl run value unit; read by bench/report.sh)
#   REV=<label>                what the table header names as the measured source
#                              (default: git HEAD, flagged if include/ src/ channels/ differ)
#
# Runs are interleaved (run 1 of every workload and implementation, then run
# 2, ...), so drifting machine load spreads over all implementations instead of
# landing on one. The machine's load average is printed before and after:
# on a shared machine, read the spreads before the medians.
#
# Profiling one workload (a small n is enough):
#   perf record -e cpu-clock --call-graph dwarf,16384 <build>/bench/conch_bench_channels B 1 5000000
#   perf report --children --sort symbol     (no hardware counters on this VM: use cpu-clock)
# Instruction counts (reproducible on a noisy machine): valgrind runs
# io_uring_enter as a non-blocking syscall (liburing issue #657), so under
# valgrind the loops cap each wait at 1 ms (src/loop.cpp) and callgrind works:
#   valgrind --tool=callgrind <build>/bench/conch_bench_channels B 1 100000
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-${BUILD_ROOT:-$ROOT}/build-bench}
RUNS=${RUNS:-5}
WORKLOADS=${WORKLOADS:-"A B C D E F"}
IMPLS=${IMPLS:-"conch1 conch2 go1 go2 fiber asio1"}
TIMEOUT=${TIMEOUT:-120}
RESULTS=${RESULTS:-$BUILD/bench/channels-results.txt}
BIN=$BUILD/bench

log() { echo "run_channels: $*" >&2; }

# ---- build ----

have_fiber=1
have_go=1
have_asio=1
if [[ -z ${NO_BUILD:-} ]]; then
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >&2
  fi
  targets=(conch_bench_channels)
  # The optional peers: built where their toolchain defined the target.
  have=$(cmake --build "$BUILD" --target help 2>/dev/null || true)
  for t in conch_bench_fiber conch_bench_asio; do
    if grep -w "$t" <<<"$have" >/dev/null; then targets+=("$t"); fi
  done
  cmake --build "$BUILD" -j"${JOBS:-2}" --target "${targets[@]}" >&2
  if command -v go >/dev/null 2>&1; then
    mkdir -p "$BUILD/go-cache"
    (cd "$ROOT/bench/go" &&
      GO111MODULE=off GOFLAGS= GOCACHE="$BUILD/go-cache" go build -o "$BIN/conch_bench_go" main.go) >&2
  fi
fi
[[ -x $BIN/conch_bench_channels ]] || { log "no $BIN/conch_bench_channels; build failed?"; exit 1; }
[[ -x $BIN/conch_bench_fiber ]] || { have_fiber=0; log "no conch_bench_fiber (Boost.Fiber 1.81 missing?): fiber skipped"; }
[[ -x $BIN/conch_bench_go ]] || { have_go=0; log "no conch_bench_go (go missing?): go skipped"; }
[[ -x $BIN/conch_bench_asio ]] || { have_asio=0; log "no conch_bench_asio (boost/asio/experimental/channel.hpp missing?): asio skipped"; }

# ---- run ----

# The workloads' default n (as in chan_workloads.cpp, fiber_workloads.cpp and
# go/main.go), divided by SCALE; empty when SCALE is 1 (each program's own default).
declare -A default_n=([A]=1000000 [B]=10000000 [C]=10000000 [D]=5000000 [E]=1000000 [F]=100000)
n_for() { [[ ${SCALE:-1} == 1 ]] || echo $((default_n[$1] / SCALE)); }
cmd_for() {  # impl workload -> sets cmd=(command line), empty if unavailable
  cmd=()
  local n; n=$(n_for "$2")
  case $1 in
    conch1) cmd=("$BIN/conch_bench_channels" "$2" 1 $n) ;;
    conch2) cmd=("$BIN/conch_bench_channels" "$2" 2 $n) ;;
    go1) if ((have_go)); then cmd=("$BIN/conch_bench_go" "$2" 1 $n); fi ;;
    go2) if ((have_go)); then cmd=("$BIN/conch_bench_go" "$2" 2 $n); fi ;;
    fiber) if ((have_fiber)); then cmd=("$BIN/conch_bench_fiber" "$2" $n); fi ;;
    asio1) if ((have_asio)); then cmd=("$BIN/conch_bench_asio" "$2" $n); fi ;;
    *) log "unknown implementation $1"; exit 2 ;;
  esac
}

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
: >"$RESULTS.stderr"
[[ -z ${BENCH_TSV:-} ]] || : >"$BENCH_TSV"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for ((r = 1; r <= RUNS; r++)); do
  log "run $r/$RUNS"
  for w in $WORKLOADS; do
    for impl in $IMPLS; do
      cmd_for "$impl" "$w"
      ((${#cmd[@]})) || continue
      rc=0
      line=$(timeout -k 5 "$TIMEOUT" "${cmd[@]}" 2>>"$RESULTS.stderr") || rc=$?
      line=$(grep '^bench=' <<<"$line" | tail -n1 || true)
      if ((rc != 0)) || [[ -z $line ]]; then
        log "FAIL: ${cmd[*]} (exit $rc; 124 = killed after ${TIMEOUT}s; stderr in $RESULTS.stderr)"
        line="bench=$w impl=$impl FAIL rc=$rc"
      fi
      echo "run=$r workload=$w $line" >>"$RESULTS"
      # A failed run writes no row: report.sh counts the rows it got.
      if [[ -n ${BENCH_TSV:-} && $line != *FAIL* ]]; then
        awk -v OFS='\t' -v w="$w" -v impl="$impl" -v r="$r" '{
          for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
          print "time", w, impl, r, v["value"], v["unit"]
          if (v["cpu"] != "") print "cpu", w, impl, r, v["cpu"], v["unit"] }' <<<"$line" >>"$BENCH_TSV"
      fi
    done
  done
done
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- table ----

rev=${REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")}
if [[ -z ${REV:-} ]] && ! git -C "$ROOT" diff --quiet HEAD -- include src channels 2>/dev/null; then
  rev="$rev+uncommitted changes in include/ src/ channels/"
fi
echo "conch channel benchmarks (issue 2): $rev, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before: $load_before   after: $load_after   (wall ${elapsed}s, RUNS=$RUNS)"
echo "raw lines: $RESULTS"
echo "value: ns/op (A per round trip, B-D per message, E per go block/goroutine/fiber), F total ms"
echo "ratios from the medians of this run; targets from issue 2 (time ratios unless marked rss)"
echo "median, min..max: wall time; cpu: process CPU time (all threads) over the same timed region,"
echo "same unit (steadier under load for 1-thread runs; above wall when a 2nd thread worked)"
echo "rss_kb: peak RSS of the whole process (getrusage ru_maxrss, as is)"
awk -v workloads="$WORKLOADS" -v impls="$IMPLS" '
function median(key, what,   m, i, j, t, a) {
  m = cnt[key]
  for (i = 1; i <= m; i++) a[i] = (what == "rss") ? rss[key, i] : (what == "cpu") ? cpus[key, i] : val[key, i]
  for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  if (m == 0) return ""
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function verdict(ratio, target, strict) {
  if (ratio == "") return "n/a"
  return ((strict && ratio < target) || (!strict && ratio <= target)) ? "PASS" : "MISS"
}
function ratio_line(w, num, den, what, target, strict, label,   a, b, r, rs, tgt) {
  a = median(w SUBSEP num, what); b = median(w SUBSEP den, what)
  if (a == "" || b == "" || b == 0) { r = ""; rs = "   n/a" } else { r = a / b; rs = sprintf("%6.2f", r) }
  if (target == "") tgt = "(info)"
  else tgt = sprintf("target %s %.2f  %s", strict ? "< " : "<=", target, verdict(r, target, strict))
  printf "    %-22s %s  %s\n", num "/" den " " label, rs, tgt
}
function target(w, num, den, t, strict) {
  ratio_line(w, num, den, "val", t, strict, "time")
  ratio_line(w, num, den, "cpu", "", 0, "cpu")
}
{
  w = ""; impl = ""; v = ""; rs = ""; unit = ""; cpu = ""; name = ""; fail = 0
  for (i = 1; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "workload") w = kv[2]
    else if (kv[1] == "impl") impl = kv[2]
    else if (kv[1] == "value") v = kv[2]
    else if (kv[1] == "rss_kb") rs = kv[2]
    else if (kv[1] == "unit") unit = kv[2]
    else if (kv[1] == "cpu") cpu = kv[2]
    else if (kv[1] == "bench") name = kv[2]
    else if ($i == "FAIL") fail = 1
  }
  key = w SUBSEP impl
  runs[key]++
  if (fail) { fails[key]++; next }
  c = ++cnt[key]
  val[key, c] = v + 0; rss[key, c] = rs + 0; cpus[key, c] = cpu + 0
  if (!(key in lo) || v + 0 < lo[key]) lo[key] = v + 0
  if (!(key in hi) || v + 0 > hi[key]) hi[key] = v + 0
  units[w] = unit; names[w] = name
}
END {
  nw = split(workloads, W, " "); ni = split(impls, I, " ")
  for (k = 1; k <= nw; k++) {
    w = W[k]
    printf "\n%s  [%s]\n", (w in names) ? names[w] : w, (w in units) ? units[w] : "?"
    printf "    %-8s %10s  %-21s %10s  %12s  %s\n", "impl", "median", "min..max", "cpu(med)", "rss_kb(med)", "ok/runs"
    for (j = 1; j <= ni; j++) {
      key = w SUBSEP I[j]
      if (!(key in runs)) continue
      if (cnt[key] > 0)
        printf "    %-8s %10.1f  %-21s %10.1f  %12d  %d/%d\n", I[j], median(key, "val"),
               sprintf("%.1f..%.1f", lo[key], hi[key]), median(key, "cpu"), median(key, "rss"), cnt[key], runs[key]
      else
        printf "    %-8s %10s  %-21s %10s  %12s  0/%d\n", I[j], "FAIL", "", "", "", runs[key]
    }
    # The targets of issue 2 (wall-time ratios, and the peak RSS one for E), then the
    # same comparisons in CPU time (info: steadier on a loaded machine).
    if (w == "A") { target(w, "conch1", "go1", 0.3, 0); target(w, "conch1", "fiber", 1, 1) }
    if (w == "B") { target(w, "conch1", "go1", 0.5, 0); target(w, "conch1", "fiber", 1, 1) }
    if (w == "C") { target(w, "conch2", "go2", 0.7, 0); target(w, "conch1", "go1", "", 0) }
    if (w == "D") { target(w, "conch1", "go1", 0.4, 0) }
    if (w == "E") { target(w, "conch1", "go1", 0.2, 0); ratio_line(w, "conch1", "go1", "rss", 0.25, 0, "rss")
                    target(w, "conch1", "fiber", 1, 1) }
    if (w == "F") { target(w, "conch1", "go1", 0.7, 0); ratio_line(w, "conch1", "go1", "rss", "", 0, "rss") }
    if (w != "C") target(w, "conch2", "go2", "", 0)
    if (w == "C" || w == "D" || w == "F") target(w, "conch1", "fiber", "", 0)
    target(w, "conch1", "asio1", "", 0)  # issue 15: a peer, no target
  }
}' "$RESULTS"
echo
echo "notes: Boost.Fiber runs on 1 thread (round_robin, default stacks); its D is a polling"
echo "emulation (try_pop both + yield), since Boost.Fiber has no select. go1/go2 = GOMAXPROCS."
echo "asio1: Asio's experimental::channel on one io_context thread; its D waits on a parallel group"
echo "of both receives (Asio has no select) and counts a value the losing receive already took."
failed=$(grep -c ' FAIL ' "$RESULTS" || true)
if ((failed > 0)); then
  echo "run_channels: $failed measurement(s) failed; see $RESULTS.stderr" >&2
  exit 1
fi
