#!/usr/bin/env bash
# The project's test command: every unit, property, golden and functional test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
