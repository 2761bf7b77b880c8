#!/usr/bin/env bash
# README command 1: set up the environment, then build the demo assets, train on CPU,
# run inference on the demo test split and print the accuracy and the wall time.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup_env.sh"
cd "$REPO_ROOT"
python scripts/run_demo.py "$@"
