#!/bin/sh
# tests/nats/js/install.sh DEST: installs the pinned NATS JavaScript client (package-lock.json) into DEST/node_modules.
# `npm ci --ignore-scripts`: exactly the locked versions, no install scripts run. Exit 77 (skipped) when npm
# is missing or the registry cannot be reached, so the interop tests skip instead of failing.
set -u
src=$(dirname "$0")
dest=$1
command -v npm >/dev/null 2>&1 || { echo "skipped: npm is not installed (Debian: apt-get install npm)"; exit 77; }
mkdir -p "$dest" && cp "$src/package.json" "$src/package-lock.json" "$dest/" || exit 1
if [ -f "$dest/node_modules/nats/package.json" ] && cmp -s "$src/package-lock.json" "$dest/node_modules/.package-lock.json.src" 2>/dev/null; then
  exit 0  # already installed from this lock file
fi
cd "$dest" || exit 1
if ! npm ci --ignore-scripts --no-audit --no-fund >npm.log 2>&1; then
  cat npm.log
  echo "skipped: npm ci failed (is the npm registry reachable?)"
  exit 77
fi
cp package-lock.json node_modules/.package-lock.json.src
