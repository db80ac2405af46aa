#!/usr/bin/env bash
# One command: install, migrate, seed the demo clinic, and run API + worker + beat.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# The service runs as it would in a clinic: no debug pages. Set DJANGO_DEBUG=true to debug.
export DJANGO_DEBUG="${DJANGO_DEBUG:-false}"

echo "==> preparing the database"
python scripts/ensure_database.py
python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
mkdir -p .run

echo "==> demo clinic"
python manage.py seed_demo

echo "==> starting API (http://${API_BIND:-127.0.0.1:8000}/api/docs/), worker and beat; Ctrl-C stops all"
exec honcho start -f Procfile
