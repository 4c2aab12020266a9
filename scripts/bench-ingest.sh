#!/usr/bin/env bash
# Makes a real MariaDB slow query log and measures `sqlflight bench ingest` on it
# against pt-query-digest. Usage: scripts/bench-ingest.sh [STATEMENTS] [extra bench args]
# Needs mariadb-server and percona-toolkit (apt-get install mariadb-server percona-toolkit).
set -euo pipefail
n=${1:-200000}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sqlflight/target}
cache=$HOME/.cache/sqlflight/bench-logs
mkdir -p "$cache"
bin=$CARGO_TARGET_DIR/release/sqlflight
(cd "$root" && cargo build --release -q -p sqlflight)
log=$cache/mariadb-slow-$n.log
if [ ! -s "$log" ]; then
  d=$(mktemp -d)
  trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
  user=()
  if [ "$(id -u)" = 0 ]; then chown mysql "$d"; user=(--user=mysql); fi
  mariadb-install-db --no-defaults --datadir="$d/data" "${user[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null
  mariadbd --no-defaults "${user[@]}" --datadir="$d/data" --socket="$d/s.sock" --skip-networking \
    --slow-query-log=1 --slow-query-log-file=slow.log --long-query-time=0 --log-output=FILE \
    --innodb-flush-log-at-trx-commit=0 >"$d/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do mariadb --socket="$d/s.sock" -u root -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb --socket="$d/s.sock" -u root -e 'CREATE DATABASE shop'
  start=$(date +%s)
  "$bin" bench ingest --workload "$n" | mariadb --socket="$d/s.sock" -u root shop >/dev/null
  echo "replayed $n statements through MariaDB in $(( $(date +%s) - start )) s" >&2
  mariadb --socket="$d/s.sock" -u root -e "SELECT 'end-of-workload'" >/dev/null
  sleep 1
  cp "$d/data/slow.log" "$log"
fi
"$bin" bench ingest --log "$log" "$@"
