#!/usr/bin/env bash
# Source me: makes sure a virtual environment is active and the package is installed.
# - An active venv (or conda env) is used as is; otherwise .venv/ in the repo is created/reused.
# - pip keeps a torch that is already installed when it satisfies pyproject.toml.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" ]]; then
    if [[ ! -x "$REPO_ROOT/.venv/bin/python" ]]; then
        echo "[setup] creating $REPO_ROOT/.venv"
        python3 -m venv "$REPO_ROOT/.venv"
    fi
    # shellcheck disable=SC1091
    source "$REPO_ROOT/.venv/bin/activate"
fi
STAMP="$VIRTUAL_ENV${CONDA_PREFIX:-}/.my_affectgpt_installed"
if [[ ! -f "$STAMP" || "$REPO_ROOT/pyproject.toml" -nt "$STAMP" ]] || ! python -c "import my_affectgpt" 2>/dev/null; then
    echo "[setup] installing my_affectgpt and its dependencies into ${VIRTUAL_ENV:-$CONDA_PREFIX} (first time: a few minutes)"
    python -m pip install --quiet --disable-pip-version-check -e "$REPO_ROOT[test]"
    touch "$STAMP"
fi
