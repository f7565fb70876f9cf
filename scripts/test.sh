#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every check: lint, types, generated-code drift, and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PY=.venv/bin/python

echo "== ruff";  $PY -m ruff check .
echo "== mypy";  $PY -m mypy
echo "== protos"; scripts/gen-protos.sh --check
echo "== tests"
set +e
$PY -m pytest -q -p no:cacheprovider --durations=25 "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure of this script, said plainly.
if [ $rc = 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit $rc
