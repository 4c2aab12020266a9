#!/usr/bin/env bash
# Longer fuzzing of every input sqlflight parses (issue 20): the log parsers and
# the `.sql` splitter (random bytes and mutations of real log records), the
# worker protocol's frame decoder, and the config loader. The same property
# tests run briefly (64-256 cases) in `cargo test`; this runs them with
# PROPTEST_CASES cases each (default 20000). A failure prints the minimal
# input; proptest records its seed under `*/proptest-regressions/`, which is
# committed, so every crash found stays a regression test.
#
#   bash scripts/fuzz.sh            # 20000 cases per target
#   bash scripts/fuzz.sh 200000     # longer
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sqlflight/target}"
start=$(date +%s)
cargo test -p sqlflight-corpora --lib -- \
  ingest::hostile::any_bytes_in_any_format_never_panic ingest::hostile::mutated_real_logs_never_panic
cargo test -p sqlflight-engines --lib -- \
  worker::fuzz::any_bytes_decode_or_fail_cleanly worker::fuzz::mutated_frames_decode_or_fail_cleanly
cargo test -p sqlflight-tests --test e2e -- hardening::config_loader_never_panics
echo "fuzz: ${PROPTEST_CASES} cases per target, $(( $(date +%s) - start )) s"
