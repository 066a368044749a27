#!/usr/bin/env bash
# tests/fuzz/run.sh
# Runs each libFuzzer target for a while on a scratch copy of its corpus; stops at the first finding.
#
#   tests/fuzz/run.sh <dir of conch_fuzz_* binaries> <seconds per target> <target>...
#
# New inputs go to <dir>/work/<target> (the committed corpus is only read:
# copy an input worth keeping into tests/fuzz/corpus/<target> by hand), a
# crash to <dir>/artifacts/<target>-crash-*. Prints one line per target:
#   fuzz <target>: <executions> executions in <s> s, <n> corpus inputs, <finding or "nothing found">
# Exit status: non-zero if any target found something (the others still run).
set -uo pipefail
bin=$1 secs=$2
shift 2
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
status=0
for t in "$@"; do
  exe=$bin/conch_fuzz_$t
  work=$bin/work/$t
  mkdir -p "$work" "$bin/artifacts"
  log=$bin/work/$t.log
  t0=$SECONDS
  # -timeout: one input taking over 10 s is a hang (a finding);
  # -rss_limit_mb: the Lua targets may allocate big channels on purpose.
  "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$bin/artifacts/$t-" "$work" "$src/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  inputs=$(find "$work" "$src/corpus/$t" -type f | wc -l)
  if ((rc == 0)); then
    echo "fuzz $t: ${execs:-?} executions in $((SECONDS - t0)) s, $inputs corpus inputs, nothing found"
  else
    status=1
    artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
    echo "fuzz $t: FOUND something after ${execs:-?} executions (exit $rc): ${artifact:-see $log}"
    grep -E 'ERROR|FUZZ_CHECK|ORACLE|fuzz:|SUMMARY' "$log" | head -20
  fi
done
exit $status
