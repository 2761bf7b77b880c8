#!/usr/bin/env bash
# Set up the environment (see setup_env.sh) and run the whole test suite on CPU.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$REPO_ROOT/scripts/setup_env.sh"
cd "$REPO_ROOT"
python -m pytest -q "$@"
