#!/usr/bin/env bash
# tests/support/check_layering.sh
# Fails when an #include crosses a layer or a privacy line; prints each offending line.
#
# Usage: check_layering.sh <checkout root>. Looks at #include lines only;
# public headers are <conch/...> (internals under conch/<layer>/detail/ too),
# private ones "src/...", "channels/...", "sockets/...", "lua/..." from the
# repository root (STYLE.md B.3). The rules:
#  (a) a lower layer never includes a higher one: core <- channels <- sockets
#      <- lua, for the implementation folders and their public headers alike
#      (conch/<layer>/detail/ headers belong to their layer: includable at or
#      above it);
#  (b) nothing outside src/ includes a src/ header but src/io.hpp, the door
#      for the layers that drive the ring ($ring_layers), and nothing else
#      includes that one either;
#  (c) a public header (include/conch/) never includes a private one.
# tests/support/layering_bad/ (deliberate violations, one tree per rule) and
# the build directories are not scanned.
set -euo pipefail
root=${1:?usage: check_layering.sh <checkout root>}
cd "$root"

ring_layers="sockets"  # the folders that drive a loop's ring through src/io.hpp
# Known exceptions, as exact "path:include line" entries (none today); a note
# says when one no longer matches anything.
allowed=()

failed=0
# hits <include pattern (ERE)> <dirs...>: the matching #include lines, as path:line:text.
hits() {
  local pattern=$1; shift
  local dirs=() d
  for d in "$@"; do [[ -d $d ]] && dirs+=("$d"); done
  ((${#dirs[@]})) || return 0
  grep -rnE --include='*.hpp' --include='*.cpp' --include='*.h' --include='*.c' --include='*.cc' \
       --exclude-dir=layering_bad --exclude-dir='build*' \
       "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" "${dirs[@]}" || true
}
# report <message> <hits>: prints and counts them, minus the allowed exceptions.
report() {
  local msg=$1 found=$2 line a kept=""
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    for a in ${allowed[@]+"${allowed[@]}"}; do
      [[ ${line%%:*}:${line#*:*:} == "$a" ]] && continue 2
    done
    kept+="$line"$'\n'
  done <<< "$found"
  if [[ -n $kept ]]; then
    echo "layering violation: $msg:"
    printf '%s' "$kept" | sed 's/^/  /'
    failed=1
  fi
}
# check <what may not be included (ERE)> <dirs...>: rule (a).
check() {
  local forbidden=$1; shift
  local dirs=() d
  for d in "$@"; do [[ -d $d ]] && dirs+=("$d"); done
  report "${dirs[*]} must not include ${forbidden//|/, }" "$(hits "$forbidden" "$@")"
}

# (a) lower layers never include higher ones. conch/chan[/.] also matches
# conch/chan/detail/..., so a detail header counts as its layer's.
umbrella='conch/conch\.hpp'  # pulls in every layer
check "conch/chan[/.]|conch/net[/.]|conch/lua[/.]|$umbrella|channels/|sockets/|lua/" src include/conch/core
check "conch/net[/.]|conch/lua[/.]|$umbrella|sockets/|lua/" channels include/conch/chan
check "conch/lua[/.]|$umbrella|lua/" sockets include/conch/net

# (b) src/ headers stay in src/, but for src/io.hpp in the ring layers.
others=()
for d in *; do
  [[ -d $d && $d != src && $d != build* && " $ring_layers " != *" $d "* ]] && others+=("$d")
done
# shellcheck disable=SC2086  # ring_layers is a word list
report "$ring_layers may include only src/io.hpp of src/" \
  "$(hits 'src/' $ring_layers | grep -vE ':[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]src/io\.hpp[">]' || true)"
((${#others[@]})) && report "${others[*]} must not include src/ headers (src/io.hpp is for $ring_layers)" \
  "$(hits 'src/' "${others[@]}")"

# (c) public headers include only public ones.
report "include/conch must not include private headers" "$(hits 'src/|channels/|sockets/|lua/' include/conch)"

# Exceptions that no longer match anything are stale: say so (not an error).
for a in ${allowed[@]+"${allowed[@]}"}; do
  f=${a%%:*}
  if [[ -f $f ]] && ! grep -qxF -- "${a#*:}" "$f"; then
    echo "note: check_layering.sh allows '$a', which is gone: drop the exception"
  fi
done

if ((failed)); then exit 1; fi
echo "layering: ok (core <- channels <- sockets <- lua; src/ private but src/io.hpp for $ring_layers; include/conch public only)"
