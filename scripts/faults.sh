#!/usr/bin/env bash
# The fault table (faults/__main__.py): the service on its own PostgreSQL and Redis, broken on
# purpose under load. Extra arguments go to the runner (e.g. scripts/faults.sh --rounds 1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec python -m faults "$@"
