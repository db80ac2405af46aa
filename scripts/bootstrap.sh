#!/usr/bin/env bash
# Sourced by scripts/run.sh and scripts/test.sh: installs the locked environment into .venv
# and checks that PostgreSQL and Redis answer. Safe to run again; does nothing twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION="0.13.9"
TOOLS="$ROOT/.tools"
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

PYTHON_BIN="$(command -v python3.11 || command -v python3 || true)"
if [ -z "$PYTHON_BIN" ] || ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (python3.11 on PATH)." >&2
  exit 1
fi

if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "==> installing uv $UV_VERSION into .tools/"
  "$PYTHON_BIN" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "uv==$UV_VERSION"
fi

echo "==> syncing .venv with uv.lock"
"$TOOLS/bin/uv" sync --locked --quiet --python "$PYTHON_BIN"

export PATH="$ROOT/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-clinic.settings}"

echo "==> checking PostgreSQL and Redis"
python scripts/check_services.py
