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
echo "MMLU not found (set LMAUDIT_DATA_DIR to a folder holding mmlu/test/<subject>_test.csv and mmlu/dev/...," >&2
echo "or add --task-arg data_source=hub to read cais/mmlu from the Hugging Face hub). Running on the MMLU sample" >&2
echo "shipped with lmaudit (the dev split and the first 10 test questions of each subject): a check of the" >&2
echo "pipeline, not an MMLU score." >&2
exec .venv/bin/lmaudit eval --model smollm2 --tasks mmlu --limit 50 --task-arg data_source=shipped "$@"
