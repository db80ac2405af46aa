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
# The audit checkpoints' signing key lives outside the database (README "Signed checkpoints").
if [ -z "${AUDIT_SIGNING_KEY:-}" ]; then
  if [ ! -s .run/audit_signing_key ]; then
    (umask 077; python manage.py audit_checkpoint --generate-key | sed -n 's/^AUDIT_SIGNING_KEY=//p' > .run/audit_signing_key)
  fi
  AUDIT_SIGNING_KEY="$(cat .run/audit_signing_key)"
  export AUDIT_SIGNING_KEY
fi

echo "==> demo clinic"
python manage.py seed_demo

echo "==> starting API (http://${API_BIND:-127.0.0.1:8000}/api/docs/), worker and beat; Ctrl-C stops all"
exec honcho start -f Procfile
