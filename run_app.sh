#!/usr/bin/env bash
# Set up (or reuse) .venv with the pinned requirements and start MEMO Studio on http://127.0.0.1:7860.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${MEMO_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.txt
exec "$VENV/bin/python" app.py "$@"
