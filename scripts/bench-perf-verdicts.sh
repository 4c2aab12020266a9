#!/usr/bin/env bash
# Flight wall time and decisions of two sqlflight builds on TPC-H: an A/A flight
# (the same profile on both sides) and the demo's profiles (sort-merge joins on the
# candidate), each build with its own defaults or the flags given.
#
#   bash scripts/bench-perf-verdicts.sh OLD_BIN "OLD_FLAGS" NEW_BIN "NEW_FLAGS" [SCALE]
#   e.g. bash scripts/bench-perf-verdicts.sh old/sqlflight "--repeat 5" target/release/sqlflight "" 0.1
#
# Prints one line per build and flight: wall seconds, outcome classes, verdicts.
set -euo pipefail
old="$1"; old_flags="$2"; new="$3"; new_flags="$4"; scale="${5:-0.1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# TPC-H data, generated once into the cache by the demo's generator.
cache="${SQLFLIGHT_CACHE:-$HOME/.cache/sqlflight}"
"$new" demo --scale "$scale" --no-flight --out "$work/demo" -q >/dev/null
data="$(ls -d "$cache"/data/tpch/sf"$scale"-* | head -1)"
tables=""
for f in "$data"/*.parquet; do
  t="$(basename "$f" .parquet)"
  tables+="    $t: $f"$'\n'
done
for profile in aa demo; do
  cand='candidate: { kind: datafusion, settings: { datafusion.execution.target_partitions: "4" } }'
  if [ "$profile" = demo ]; then
    cand='candidate: { kind: datafusion, settings: { datafusion.execution.target_partitions: "4", datafusion.optimizer.prefer_hash_join: "false" }, disable_rules: [ push_down_limit ] }'
  fi
  cat > "$work/$profile.yaml" <<YAML
corpus: bundled:tpch
catalog:
  tables:
$tables
engines:
  baseline: { kind: datafusion, settings: { datafusion.execution.target_partitions: "4" } }
  $cand
baseline: baseline
candidate: candidate
YAML
  for which in old new; do
    bin="${!which}"; flags_var="${which}_flags"; flags="${!flags_var}"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" flight -c "$work/$profile.yaml" --out "$work/$profile-$which" -q $flags || true
    end=$(date +%s.%N)
    summary="$(python3 - "$work/$profile-$which/outcomes.jsonl" <<'PY'
import json, sys, collections
classes, verdicts = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    o = json.loads(line)
    classes[o["class"]] += 1
    p = (o.get("flight") or {}).get("perf") or {}
    v = p.get("verdict", "-")
    if p.get("regression"): v += "+regression"
    if p.get("undecided_slowdown"): v += "+undecided_slowdown"
    verdicts[v] += 1
print(dict(classes), dict(verdicts))
PY
)"
    printf '%-5s %-4s %7.1f s  %s\n' "$profile" "$which" "$(echo "$end - $start" | bc)" "$summary"
  done
done
