#!/usr/bin/env bash
# The test command: formatting, the crates' layering, lints, docs, then every test (unit,
# integration, oracle, doc examples) of every crate of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc --quiet
