#!/usr/bin/env bash
# tests/support/check_layering.sh
# Fails when a lower layer includes a higher one (core <- channels <- sockets <- lua).
#
# Usage: check_layering.sh <checkout root>. Looks at #include lines only;
# public headers are <conch/...>, private ones "channels/...", "sockets/...",
# "lua/..." from the repository root (STYLE.md B.3).
set -euo pipefail
root=${1:?usage: check_layering.sh <checkout root>}
cd "$root"

failed=0
# check <what may not be included (ERE)> <dirs...>
check() {
  local forbidden=$1; shift
  local dirs=() d
  for d in "$@"; do [[ -d $d ]] && dirs+=("$d"); done
  ((${#dirs[@]})) || return 0
  local hits
  hits=$(grep -rnE --include='*.hpp' --include='*.cpp' --include='*.h' --include='*.c' --include='*.cc' \
           "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($forbidden)" "${dirs[@]}" || true)
  if [[ -n $hits ]]; then
    echo "layering violation: ${dirs[*]} must not include ${forbidden//|/, }:"
    echo "$hits" | sed 's/^/  /'
    failed=1
  fi
}

umbrella='conch/conch\.hpp'  # pulls in every layer
check "conch/chan[/.]|conch/net[/.]|conch/lua[/.]|$umbrella|channels/|sockets/|lua/" src include/conch/core
check "conch/net[/.]|conch/lua[/.]|$umbrella|sockets/|lua/" channels include/conch/chan
check "conch/lua[/.]|$umbrella|lua/" sockets include/conch/net

if ((failed)); then exit 1; fi
echo "layering: ok (core <- channels <- sockets <- lua)"
