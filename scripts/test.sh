#!/usr/bin/env bash
# Runs every test of sqlflight on a fresh machine: installs what is missing, then
# checks formatting, lints and runs the workspace tests.
#
#   bash scripts/test.sh
#
# Builds go to $CARGO_TARGET_DIR (default: ~/.cache/sqlflight/target) so repeated
# runs reuse them; generated test data goes to temp dirs or ~/.cache/sqlflight.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sqlflight/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# insta: never write snapshots during a test run; a changed plan fails the test.
export INSTA_UPDATE=no
export CI="${CI:-true}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 2
fi
cargo --version
for comp in clippy rustfmt; do
  if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing $comp"
    rustup component add "$comp"
  fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
cargo test --workspace --locked
