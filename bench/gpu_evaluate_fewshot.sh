#!/usr/bin/env bash
# GPU check of few-shot evaluation (bench/gpu_evaluate_fewshot.py): stock lm-eval `hf` vs the kit's scorer
# with prefix sharing, float16, batch size auto, on SmolLM2-135M's shape and a ~1B Llama shape (random
# weights), on the MMLU few-shot proxies (4 subjects x 2 proxies, first 100 items each).
# Steps: on the CPU machine `python bench/gpu_evaluate_fewshot.py --export .gpu/evaluate-fewshot` (name
# .gpu/evaluate-fewshot in the GPU run's carry: .gpu/ is git-excluded), then on the GPU machine
# `bash bench/gpu_evaluate_fewshot.sh` (LIMIT_S, default 540: under 10 minutes in all).
# Prints seconds, forward tokens and differing predictions per model; writes $OUT/gpu-evaluate-fewshot.json.
# DEVICE=cpu SMALL=1 runs the same on CPU with a tiny second model (a test of the script, not a benchmark).
set -uo pipefail
cd "$(dirname "$0")/.."
INPUTS=${INPUTS:-.gpu/evaluate-fewshot}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-runs/bench/gpu-evaluate-fewshot}
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$PYTHON" = python3 ] && [ "$DEVICE" = cpu ] && PYTHON=.venv/bin/python
if [ ! -f "$INPUTS/model-config/config.json" ]; then
  echo "no inputs in $INPUTS: run python bench/gpu_evaluate_fewshot.py --export $INPUTS first (CPU machine)" >&2
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SMALL_ARG=()
[ -n "${SMALL:-}" ] && SMALL_ARG=(--small)
echo "== $(date -u +%FT%TZ) gpu_evaluate_fewshot.sh DEVICE=$DEVICE INPUTS=$INPUTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout "${LIMIT_S:-540}" "$PYTHON" bench/gpu_evaluate_fewshot.py --inputs "$INPUTS" --device "$DEVICE" \
  --out "$OUT" "${SMALL_ARG[@]}" 2>&1 | grep --line-buffered -v -E "it/s\]|s/it\]"
rc=${PIPESTATUS[0]}
echo "rc=$rc"
exit "$rc"
