#!/usr/bin/env bash
# Set up (dependencies, servers and sandboxes the tests need) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
if [ -z "${LMAUDIT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export LMAUDIT_DATA_DIR="$(cd ../shared/data && pwd)"
fi
exec .venv/bin/python -m pytest -q --durations=15 "$@"
