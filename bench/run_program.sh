#!/bin/bash
# bench/run_program.sh: the `conch` program's worker pool, cells side by side in one run.
#   CONCH=build/lua/conch JOBS=100000 CPU_JOBS=4000 [REPS=5] [SLUA=/path/to/slua] bench/run_program.sh
# Prints `bench=program param=<cell> value=<jobs/s> unit=jobs/s min=.. max=..`
# per cell: the median of REPS runs (default 1) and their spread; then the
# ratios the issue asks for (of the medians). The CPU cells also print each
# loop thread's CPU time (ms, last run) and
# `parallelism` = the loops' CPU time over the elapsed time (above 1 only if
# the two workers ran side by side). With SLUA, the same handler/worker pair runs under slua
# (its -wp worker-pool option; -sm SLUA_SM MB of shared store, default 1024,
# or its 100k queued jobs fail with "store is full") for the tiny-job cells.
# BENCH_TSV=path also writes each run as a row (bench/bench_tsv.sh): jobs_per_s <cell> conch|slua.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/bench_tsv.sh"
CONCH=${CONCH:-$HERE/../build/lua/conch}
JOBS=${JOBS:-100000}
CPU_JOBS=${CPU_JOBS:-4000}
SLUA=${SLUA:-}
REPS=${REPS:-1}
SERIAL_JOBS=$(( JOBS / 10 ))

# cell NAME JOBS MODE -- command...: runs it, prints jobs/s, sets RATE. The
# handler reports its own elapsed time (elapsed_ms=, from submitting the first
# job to collecting the last) under conch; under slua, which cannot, the whole
# process is timed (start-up included: give slua cells enough JOBS).
cell() {
  local name=$1 n=$2 mode=$3
  shift 4
  local t0 t1 ms rates=() r
  for r in $(seq 1 "$REPS"); do
    t0=$(date +%s%N)
    MODE=$mode JOBS=$n "$@" >/dev/null 2>"$TMP/err"
    t1=$(date +%s%N)
    ms=$(sed -n 's/^elapsed_ms=//p' "$TMP/err")
    [ -n "$ms" ] || ms=$(awk -v ns=$(( t1 - t0 )) 'BEGIN { print ns / 1e6 }')
    rates+=("$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1e3) }')")
    # slua's cells are the same cells under another implementation.
    if [[ $name == slua_* ]]; then tsv_row jobs_per_s "${name#slua_}" slua "$r" "${rates[-1]}" jobs/s
    else tsv_row jobs_per_s "$name" conch "$r" "${rates[-1]}" jobs/s; fi
  done
  read -r RATE lo hi < <(printf '%s\n' "${rates[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1], v[NR] }')
  echo "bench=program param=$name value=$RATE unit=jobs/s min=$lo max=$hi"
  if [ "$mode" = cpu ] && grep -q '^thread1_cpu_ms=' "$TMP/err"; then
    local l1 l2
    l1=$(sed -n 's/^thread1_cpu_ms=//p' "$TMP/err")
    l2=$(sed -n 's/^thread2_cpu_ms=//p' "$TMP/err")
    echo "bench=program param=${name}_loop_cpu value=$l1,$l2 unit=ms"
    awk -v a="$l1" -v b="$l2" -v ms="$ms" -v name="$name" \
      'BEGIN { printf "bench=program param=%s_parallelism value=%.2f unit=x\n", name, (a + b) / ms }'
    tsv_row parallelism "$name" conch 1 "$(awk -v a="$l1" -v b="$l2" -v ms="$ms" 'BEGIN { printf "%.2f", (a + b) / ms }')" x
  fi
}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ratio() { awk -v a="$2" -v b="$3" -v name="$1" 'BEGIN { printf "bench=program param=%s value=%.2f unit=x\n", name, a / b }'; }

H=$HERE/program/handler.lua
W=$HERE/program/worker.lua
cell batch_w2 "$JOBS" batch -- "$CONCH" "$H" "$W" -w 2; batch=$RATE
cell inflight16_w2 "$JOBS" inflight -- "$CONCH" "$H" "$W" -w 2; inflight=$RATE
cell serial_w2 "$SERIAL_JOBS" serial -- "$CONCH" "$H" "$W" -w 2; serial=$RATE
cell inline "$JOBS" inline -- "$CONCH" "$H" "$W" -w 1; inline=$RATE
cell cpu_w1 "$CPU_JOBS" cpu -- "$CONCH" "$H" "$W" -w 1; cpu1=$RATE
cell cpu_w2 "$CPU_JOBS" cpu -- "$CONCH" "$H" "$W" -w 2; cpu2=$RATE
ratio batch_vs_serial "$batch" "$serial"
ratio inflight16_vs_serial "$inflight" "$serial"
ratio inline_vs_batch "$inline" "$batch"
ratio cpu_w2_vs_w1 "$cpu2" "$cpu1"
if [ -n "$SLUA" ]; then
  cell slua_batch_w2 "$JOBS" batch -- "$SLUA" -wp 2 -sm "${SLUA_SM:-1024}" "$H" "$W"; sbatch=$RATE
  cell slua_inflight16_w2 "$JOBS" inflight -- "$SLUA" -wp 2 -sm "${SLUA_SM:-1024}" "$H" "$W"; sinflight=$RATE
  cell slua_serial_w2 "$SERIAL_JOBS" serial -- "$SLUA" -wp 2 -sm "${SLUA_SM:-1024}" "$H" "$W"; sserial=$RATE
  ratio batch_vs_slua "$batch" "$sbatch"
  ratio inflight16_vs_slua "$inflight" "$sinflight"
  ratio serial_vs_slua "$serial" "$sserial"
fi
