#!/bin/bash
# bench/run_nats.sh BUILD_DIR: conch's NATS client vs the official JavaScript client, one local nats-server.
# Messages/s 1 publisher -> 1 subscriber (16 B, 1 KiB) and request/reply round trips/s; prints the
# bench= lines and each ratio conch/js from the same run. N (default 200000) and RR (20000) set the sizes.
# Then the program's worker pool through NATS vs in-process (run_nats_pool.sh).
# BENCH_TSV=path also writes every bench= line as a row (nats_tsv below; bench/bench_tsv.sh).
set -euo pipefail
. "$(dirname "$0")/bench_tsv.sh"
# nats_tsv: echoes stdin; each "bench=nats_MODE param=IMPL,k=v,... value=V unit=U" line becomes
# the row "per_s MODE k=v ... IMPL 1 V U" (every line of that form, whichever cell printed it).
nats_tsv() {
  local l p cell
  while IFS= read -r l; do
    echo "$l"
    [[ $l == bench=nats_* ]] || continue
    p=$(kv param "$l"); cell="$(kv bench "$l")"; cell=${cell#nats_}
    [[ $p == *,* ]] && cell="$cell ${p#*,}"
    tsv_row per_s "${cell//,/ }" "${p%%,*}" 1 "$(kv value "$l")" "$(kv unit "$l")"
  done
}
build=${1:-build}
n=${N:-200000}
rr=${RR:-20000}
with=$build/tests/nats/conch_nats_with_server
js_dir=$build/tests/nats/js
sh "$(dirname "$0")/../tests/nats/js/install.sh" "$js_dir" >/dev/null
export NODE_PATH=$js_dir/node_modules
script='
  set -e
  for size in 16 1024; do
    c=$('"$build"'/bench/conch_bench_nats "$CONCH_NATS_URL" pubsub '"$n"' $size)
    j=$(node '"$(dirname "$0")"'/nats/bench.js "$CONCH_NATS_URL" pubsub '"$n"' $size)
    echo "$c"; echo "$j"
    echo "ratio pubsub size=$size conch/js=$(awk -v a="${c##*value=}" -v b="${j##*value=}" "BEGIN{printf \"%.2f\", a/b}")"
  done
  c=$('"$build"'/bench/conch_bench_nats "$CONCH_NATS_URL" reqrep '"$rr"')
  j=$(node '"$(dirname "$0")"'/nats/bench.js "$CONCH_NATS_URL" reqrep '"$rr"')
  echo "$c"; echo "$j"
  echo "ratio reqrep conch/js=$(awk -v a="${c##*value=}" -v b="${j##*value=}" "BEGIN{printf \"%.2f\", a/b}")"
'
"$with" bash -c "$script" | nats_tsv
# The program's worker pool through NATS vs in-process (bench/run_nats_pool.sh; POOL_JOBS, default 20000).
"$with" env CONCH="$build/lua/conch" JOBS="${POOL_JOBS:-20000}" bash "$(dirname "$0")/run_nats_pool.sh" | nats_tsv
