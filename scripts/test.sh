#!/usr/bin/env bash
# One command: install, lint, type-check, check the architecture and migrations, run every test.
# Extra arguments go to pytest (e.g. scripts/test.sh -k booking -x).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
export DJANGO_SETTINGS_MODULE=clinic.settings_test

echo "==> ruff format --check";  ruff format --check --quiet .
echo "==> ruff check";           ruff check --quiet .
echo "==> import-linter";        lint-imports --no-cache | tail -n 1
echo "==> mypy";                 mypy | tail -n 1
echo "==> migrations match the models"
python scripts/ensure_database.py
python manage.py makemigrations --check --dry-run
echo "==> pytest"
set +e
pytest "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": that is a failure here, never a pass.
exit $status
