#!/usr/bin/env bash
# The load benchmark in one command: bash benches/load/run.sh [options]
# Builds the servers and the driver in release mode, installs wrk (Debian) if it is missing,
# runs every scenario interleaved and prints the tables. `--help` lists the options.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk
fi

cargo build --release --locked -p keyward-bench --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
# modo-rs builds apart from the workspace (benches/modo), into the same target directory, so
# that `modo-server` sits beside `loadbench`.
cargo build --release --locked --manifest-path benches/modo/Cargo.toml --target-dir "$target_dir"
exec "$target_dir/release/loadbench" "$@"
