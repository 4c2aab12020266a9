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
# Every tier: the tests with real servers, PyPI engine releases and Chromium run
# too (plain `cargo test --workspace` leaves them out and stays hermetic).
export SQLFLIGHT_FULL_TIER=1
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

step "system packages"
# Headless Chromium renders the HTML report in the tests (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi
command -v chromium || command -v chromium-browser
# Python with venv + pip: engine releases from PyPI (DuckDB, datafusion-python) and
# a JUnit consumer are installed into cached virtual environments by the tests.
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip
fi
python3 --version
# Database servers the engine tests start on loopback in temp dirs (Debian's
# packages; the tests run the binaries directly, no service is started).
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql-15)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
# Spark and Flink releases from PyPI run on a Java 17 runtime.
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
# Signed rollout approvals are made with OpenSSH's ssh-keygen in the tests.
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ls /usr/lib/postgresql/*/bin/postgres
command -v mariadbd
java -version 2>&1 | head -1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build -p sqlflight (the binary the worker tests run as \`sqlflight worker\`)"
cargo build -p sqlflight --locked

step "cargo test --workspace"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
echo
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
