#!/usr/bin/env bash
# GPU benchmark of evaluation: the stock `lm_eval` CLI (hf backend) vs `repro evaluate` (shared-context
# scorer, the default), 1 model and 5 models, alternating (bench/bench_evaluate.py), on CUDA.
#
# Inputs: the folder written here by `bench/gpu_evaluate_prepare.sh .gpu/evaluate` (INPUTS, default
# .gpu/evaluate). Models: RANDOM WEIGHTS (torch seeds 0..4) with SmolLM2-135M's exact architecture and
# tokenizer: the timing is the real architecture's; scores are meaningless, but the numerics comparison
# (max |delta loglik| per task, differing predictions, equal acc/acc_norm) between the two tools holds.
# Tasks: 5 MMLU subjects (2 letter choices, 3 answer texts), their first 40 items (200 items), float32,
# batch 16. SUITES=mc,smoke adds the smoke suite (about twice the time).
# Lead's steps: here `bench/gpu_evaluate_prepare.sh .gpu/evaluate` (3.6 MB; .gpu/ is git-excluded, so
# name it in the run's carry), then on the GPU machine `bash bench/gpu_evaluate.sh` (timeout_s >= 240).
# BUDGET_S (default 120): no new process starts after it (missing rows are left out); LIMIT_S (170) kills.
# Writes $OUT/evaluate-gpu.json, $OUT/evaluate-gpu.md (the table; the log goes to stdout and $LOG, default /tmp/evaluate-gpu.log); about 2-3 minutes
# on an H100. DEVICE=cpu runs the same on CPU (for testing the script; slow: use ITEMS=2).
set -uo pipefail
cd "$(dirname "$0")/.."
INPUTS=${INPUTS:-.gpu/evaluate}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-runs/bench/gpu-evaluate}
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "${PYTHON}" = python3 ] && [ "$DEVICE" = cpu ] && PYTHON=.venv/bin/python
mkdir -p "$OUT"
if [ ! -f "$INPUTS/model-config/config.json" ] || [ ! -d "$INPUTS/tasks" ]; then
  echo "no inputs in $INPUTS: run bench/gpu_evaluate_prepare.sh $INPUTS first (on the CPU machine)" | tee "${LOG:-/tmp/evaluate-gpu.log}"
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{
  echo "== $(date -u +%FT%TZ) gpu_evaluate.sh DEVICE=$DEVICE INPUTS=$INPUTS"
  "$PYTHON" - <<'PY'
import platform, torch, transformers, lm_eval, importlib.metadata as md
print("python", platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "lm_eval", md.version("lm_eval"))
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
PY
  ITEMS_ARG=()
  [ -n "${ITEMS:-}" ] && ITEMS_ARG=(--items "$ITEMS")
  [ -z "${ITEMS:-}" ] && ITEMS_ARG=(--items 40)
  timeout "${LIMIT_S:-170}" "$PYTHON" bench/bench_evaluate.py --device "$DEVICE" --inputs "$INPUTS" \
    --budget-s "${BUDGET_S:-120}" \
    --suites "${SUITES:-mc}" "${ITEMS_ARG[@]}" --out "$OUT/evaluate-gpu.json"
  echo "rc=$?"
} 2>&1 | grep --line-buffered -v -E "it/s\]|s/it\]" | tee "${LOG:-/tmp/evaluate-gpu.log}"
if [ -f "$OUT/evaluate-gpu.json" ]; then
  "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['table']); print(d['machine']); print(d['model'])" \
    "$OUT/evaluate-gpu.json" | tee "$OUT/evaluate-gpu.md"
fi
[ -f "$OUT/evaluate-gpu.json" ] || { echo "no results: see ${LOG:-/tmp/evaluate-gpu.log}" >&2; exit 1; }
