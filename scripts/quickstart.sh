#!/usr/bin/env bash
# Set up and run the main job: lmaudit eval on the bundled SmolLM2 over a small MMLU sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
if [ -z "${LMAUDIT_DATA_DIR:-}" ] && [ -d ../shared/data/mmlu ]; then
  export LMAUDIT_DATA_DIR="$(cd ../shared/data && pwd)"
fi
if [ -n "${LMAUDIT_DATA_DIR:-}" ] && [ -d "$LMAUDIT_DATA_DIR/mmlu" ]; then
  exec .venv/bin/lmaudit eval --model smollm2 --tasks mmlu --limit 50 "$@"
fi
echo "MMLU not found (set LMAUDIT_DATA_DIR to a folder holding mmlu/test/<subject>_test.csv and mmlu/dev/...;" >&2
echo "the CSVs are in the original release, github.com/hendrycks/test). Running the bundled demo quiz instead." >&2
exec .venv/bin/lmaudit eval --model smollm2 --tasks demo_mcq "$@"
