#!/usr/bin/env bash
# The long schemathesis run (README "Fuzzing"): every operation as every role with many more
# examples than the suite's, then the stateful run over the schema's links; prints a summary.
# FUZZ_MAX_EXAMPLES (default 100), FUZZ_SEED (default 15), FUZZ_STATEFUL_STEPS (default 50)
# and FUZZ_STATEFUL_RUNS (default 30) tune it; extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
export DJANGO_SETTINGS_MODULE=clinic.settings_test
export FUZZ_MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
export FUZZ_STATEFUL_STEPS="${FUZZ_STATEFUL_STEPS:-50}"
export FUZZ_STATEFUL_RUNS="${FUZZ_STATEFUL_RUNS:-30}"
export FUZZ_SUMMARY=1
export FUZZ_COVERAGE=1
export FUZZ_STATEFUL_ROLES="${FUZZ_STATEFUL_ROLES:-admin,front_desk,provider,auditor}"
python scripts/ensure_database.py
exec pytest tests/fuzz -p no:cacheprovider -q -rA "$@"
