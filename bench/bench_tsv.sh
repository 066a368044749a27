# bench/bench_tsv.sh
# Sourced by the run_*.sh scripts: writes their measurements as BENCH_TSV rows for bench/report.sh.
#
# A row is "metric cell impl run value unit", tab-separated, appended as each measurement is
# taken (so the report's progress line can count them). Without BENCH_TSV nothing is written.

# tsv_row METRIC CELL IMPL RUN VALUE UNIT: one row (nothing when BENCH_TSV is unset or VALUE empty).
tsv_row() {
  [[ -n ${BENCH_TSV:-} && -n ${5:-} ]] || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$BENCH_TSV"
}

# kv KEY LINE: the value of KEY in a "k=v k=v ..." result line (empty when absent).
kv() { sed -n "s/^\(.* \)\{0,1\}$1=\([^ ]*\).*/\2/p" <<<"$2"; }
