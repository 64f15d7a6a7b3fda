#!/usr/bin/env bash
# Set up (or reuse) .venv with the pinned requirements and run the default test suite.
# Extra arguments go to pytest, e.g. `./run_tests.sh -m slow` or `./run_tests.sh tests/models`.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${MEMO_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.txt -r requirements-dev.txt
exec "$VENV/bin/python" -m pytest "$@"
