#!/usr/bin/env bash
# Runs every test of the project, on a fresh machine too: system packages, the lab's binaries
# (built once and cached in ~/.cache/kubemaint-lab, keyed by version), then lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --workspace --all-targets --locked
target/debug/kubemaint-lab prepare
scripts/build-garage.sh   # the real S3 store of the backup tests (built once, cached by version)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
