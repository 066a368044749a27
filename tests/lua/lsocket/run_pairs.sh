#!/usr/bin/env bash
# tests/lua/lsocket/run_pairs.sh
# Runs lsocket servers and clients against each other: conch's lsocket, lsocket 1.4's samples, the real lsocket.
#
# Usage: run_pairs.sh own|samples|real LUA CONCH_MODULE_DIR
#   own      conch server x conch client, with tests/lua/lsocket/{server,client}.lua
#   samples  conch x conch with lsocket 1.4's samples/ ($LSOCKET_SAMPLES; exit 77 if unset)
#   real     conch x real lsocket both ways ($LSOCKET_REAL: the real lsocket.so; exit 77 if
#            unset), with our scripts and, when $LSOCKET_SAMPLES is set, the samples too
# Each pair runs in a fresh directory (the unix scripts use ./testsocket) and, where
# `unshare -n` works, in a network namespace of its own (the scripts use port 8000):
# nothing collides with other tests. Every wait is bounded; each process is killed at the end.
set -uo pipefail
mode=${1:?usage: run_pairs.sh own|samples|real LUA CONCH_MODULE_DIR}
lua=${2:?lua interpreter}
conch_dir=$(cd "${3:?directory of conch.so and lsocket.so}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

# A network namespace of our own, with loopback up (re-exec inside it once).
if [[ -z ${LSOCKET_IN_NETNS:-} ]] && unshare -n true 2>/dev/null; then
  export LSOCKET_IN_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$0" "$@"
fi
[[ -n ${LSOCKET_IN_NETNS:-} ]] || echo "note: no network namespace (unshare -n failed): using the host's port 8000"

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The real lsocket as a module named lsocket, alone in its directory.
real_dir=$work/real
if [[ -n ${LSOCKET_REAL:-} ]]; then
  mkdir -p "$real_dir" && ln -s "$(readlink -f "$LSOCKET_REAL")" "$real_dir/lsocket.so"
fi
cpath_of() { [[ $1 == conch ]] && echo "$conch_dir/?.so" || echo "$real_dir/?.so"; }

# wait_for FILE TEXT SECONDS: until FILE contains TEXT (fixed string).
wait_for() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

failed=0
ran=0
# pair NAME KIND SIX SRV_IMPL CLT_IMPL SRV_SCRIPT CLT_SCRIPT [KIND_ARG]
# (our scripts take the kind as their first argument, the samples are one file per kind)
pair() {
  local name=$1 kind=$2 six=$3 simpl=$4 cimpl=$5 sscript=$6 cscript=$7 kind_arg=${8:-}
  local dir=$work/$name
  mkdir -p "$dir"
  local sargs=() cargs=()
  [[ -n $kind_arg ]] && sargs=("$kind_arg") && cargs=("$kind_arg")
  [[ -n $six ]] && sargs+=(6) && cargs+=(6)
  local srv_cmd=(env LUA_CPATH="$(cpath_of "$simpl")" timeout 30 stdbuf -oL "$lua" "$sscript" "${sargs[@]}")
  local clt_cmd=(env LUA_CPATH="$(cpath_of "$cimpl")" timeout 30 stdbuf -oL "$lua" "$cscript" "${cargs[@]}")
  local ok=1 why=""
  ran=$((ran + 1))
  if [[ $kind == mcast ]]; then
    # The receiver binds first; the sender broadcasts a counter.
    (cd "$dir" && exec "${clt_cmd[@]}" > clt.log 2>&1) & pids+=($!)
    if ! wait_for "$dir/clt.log" "Socket:" 10; then ok=0; why="receiver did not bind"; fi
    if ((ok)); then
      (cd "$dir" && exec "${srv_cmd[@]}" > srv.log 2>&1) & pids+=($!)
      wait_for "$dir/clt.log" "Counting: 2" 15 || { ok=0; why="nothing received"; }
    fi
  else
    (cd "$dir" && exec "${srv_cmd[@]}" > srv.log 2>&1) & pids+=($!)
    if ! wait_for "$dir/srv.log" "Socket:" 10; then ok=0; why="server did not start"; fi
    if ((ok)); then
      (cd "$dir" && printf 'hello\nworld\nquit\n' | "${clt_cmd[@]}" > clt.log 2>&1)
      local rc=$?
      ((rc == 0)) || { ok=0; why="client exit status $rc"; }
      for want in "reply: You sent: hello" "reply: You sent: world" "reply: You sent: quit"; do
        grep -qF -- "$want" "$dir/clt.log" || { ok=0; why="client lacks '$want'"; }
      done
      grep -qF -- "got 'hello'" "$dir/srv.log" || { ok=0; why="server lacks 'got hello'"; }
      if [[ $kind != udp ]] && ! wait_for "$dir/srv.log" "disconnected" 10; then
        ok=0; why="server did not see the client leave"
      fi
    fi
  fi
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
  if ((ok)); then
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name: $why"
    echo "  --- server log:"; sed 's/^/  /' "$dir/srv.log" 2>/dev/null | head -20
    echo "  --- client log:"; sed 's/^/  /' "$dir/clt.log" 2>/dev/null | head -20
  fi
}

# all SRV_IMPL CLT_IMPL SET: every kind with the scripts of SET (own or samples).
all() {
  local simpl=$1 cimpl=$2 set=$3 kind six
  for kind in tcp udp unix abstract mcast; do
    [[ $kind == abstract && $set != own ]] && continue  # the samples have no abstract-name pair
    for six in "" 6; do
      [[ ( $kind == unix || $kind == abstract ) && -n $six ]] && continue
      # IPv6 multicast (ff01::1) needs a multicast-capable interface; loopback is not one.
      [[ $kind == mcast && -n $six ]] && continue
      if [[ $set == own ]]; then
        pair "$set-$kind${six}-$simpl-srv-$cimpl-clt" "$kind" "$six" "$simpl" "$cimpl" \
          "$here/server.lua" "$here/client.lua" "$kind"
      else
        pair "$set-$kind${six}-$simpl-srv-$cimpl-clt" "$kind" "$six" "$simpl" "$cimpl" \
          "$LSOCKET_SAMPLES/testsrv_$kind.lua" "$LSOCKET_SAMPLES/testclt_$kind.lua"
      fi
    done
  done
}

case $mode in
  own) all conch conch own ;;
  samples)
    if [[ -z ${LSOCKET_SAMPLES:-} ]]; then
      echo "skipped: set LSOCKET_SAMPLES to lsocket 1.4's samples/ directory to run them"; exit 77
    fi
    all conch conch samples ;;
  real)
    if [[ -z ${LSOCKET_REAL:-} ]]; then
      echo "skipped: set LSOCKET_REAL to a real lsocket.so (lsocket 1.4, built for Lua 5.4) to run this"; exit 77
    fi
    all real conch own; all conch real own
    if [[ -n ${LSOCKET_SAMPLES:-} ]]; then
      all real conch samples; all conch real samples
    else
      echo "note: LSOCKET_SAMPLES unset: the real-lsocket pairs ran our scripts only"
    fi ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "$mode: $((ran - failed)) of $ran pairs passed"
((failed == 0))
