#!/bin/bash
# bench/run_nats_pool.sh: the `conch` worker pool through NATS (conch --nats) against in-process, one run.
#   CONCH=build/lua/conch CONCH_NATS_URL=nats://127.0.0.1:PORT JOBS=20000 [REPS=3] bench/run_nats_pool.sh
# (run_nats.sh calls it next to its own nats-server.) Cells: bench/run_program.sh's tiny-job
# batch (submit JOBS, then collect) and 16-in-flight, each in process (`conch H W -w 2`) and
# through NATS (one worker process `--worker W -w 2`, the handler `--nats URL H`). Prints
# `bench=nats_pool param=<cell> value=<jobs/s>` (median of REPS), the ratios nats/in-process and
# the hop's cost per job in microseconds at 16 in flight (1e6/nats - 1e6/in-process).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
CONCH=${CONCH:-$HERE/../build/lua/conch}
URL=${CONCH_NATS_URL:?run next to a nats-server (run_nats.sh does)}
JOBS=${JOBS:-20000}
REPS=${REPS:-3}
H=$HERE/program/handler.lua
W=$HERE/program/worker.lua
TMP=$(mktemp -d)
WPID=
trap '[ -n "$WPID" ] && kill "$WPID" 2>/dev/null; rm -rf "$TMP"' EXIT

# cell NAME MODE -- command...: the handler's own elapsed_ms over REPS runs; prints the median, sets RATE.
cell() {
  local name=$1 mode=$2 rates=() r ms
  shift 3
  for r in $(seq 1 "$REPS"); do
    MODE=$mode JOBS=$JOBS "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
    ms=$(sed -n 's/^elapsed_ms=//p' "$TMP/err")
    rates+=("$(awk -v n="$JOBS" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1e3) }')")
  done
  read -r RATE lo hi < <(printf '%s\n' "${rates[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1], v[NR] }')
  echo "bench=nats_pool param=$name value=$RATE unit=jobs/s min=$lo max=$hi"
}
ratio() { awk -v a="$2" -v b="$3" -v name="$1" 'BEGIN { printf "bench=nats_pool param=%s value=%.3f unit=x\n", name, a / b }'; }

cell inproc_batch_w2 batch -- "$CONCH" "$H" "$W" -w 2; ib=$RATE
cell inproc_inflight16_w2 inflight -- "$CONCH" "$H" "$W" -w 2; ii=$RATE
"$CONCH" --nats "$URL" --worker "$W" -w 2 2>"$TMP/worker_err" &
WPID=$!
# Warm-up (not timed): its first job waits, through the no-responders retry, until the workers
# have subscribed.
MODE=batch JOBS=100 "$CONCH" --nats "$URL" "$H" >/dev/null 2>&1 || { cat "$TMP/worker_err" >&2; exit 1; }
cell nats_batch_w2 batch -- "$CONCH" --nats "$URL" "$H"; nb=$RATE
cell nats_inflight16_w2 inflight -- "$CONCH" --nats "$URL" "$H"; ni=$RATE
ratio batch_nats_vs_inproc "$nb" "$ib"
ratio inflight16_nats_vs_inproc "$ni" "$ii"
awk -v n="$ni" -v i="$ii" 'BEGIN { printf "bench=nats_pool param=hop_cost_inflight16 value=%.1f unit=us/job\n", 1e6 / n - 1e6 / i }'
