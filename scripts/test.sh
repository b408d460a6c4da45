#!/usr/bin/env bash
# The test command: formatting, the crates' layering, lints, docs, then every test (unit,
# integration, oracle, doc examples) of every crate of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# Skipped oracle checks are counted in a file under the target directory and summed up at
# the end, whether the tests pass or not (cargo shows a skipped check as `ok`).
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
skips="$target_dir/tmp/oracle-skips"
mkdir -p "$target_dir/tmp"
rm -f "$skips"
trap 'scripts/oracle-skips.sh "$skips"' EXIT
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc --quiet
