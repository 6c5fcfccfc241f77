#!/bin/bash
# One device call for every GPU check of the kit (the lead runs it through the device tool).
# Needs, at the repository root: .whl/ (wheels of mergekit, lm-eval, transformers 5.24 and their
# dependencies missing from the GPU image; see README "GPU benchmarks") and .gpu/ (assets written here by
# the bench/gpu_*_prepare.sh scripts). Each check runs under its own time limit; logs go to $OUT.
set -u
OUT=${OUT:-runs/bench/gpu}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >"$OUT/install.log" 2>&1 || { echo "wheel install failed"; tail -5 "$OUT/install.log"; exit 1; }
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys,torch,transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
status=0
for check in ${GPU_CHECKS:-merge evaluate}; do
  script=bench/gpu_$check.sh
  [ -f "$script" ] || { echo "== $check: $script missing, skipped"; continue; }
  echo "== $check (limit ${GPU_CHECK_LIMIT_S:-235} s)"
  start=$(date +%s)
  timeout "${GPU_CHECK_LIMIT_S:-235}" bash "$script" 2>&1 | tee "$OUT/$check.log" | tail -40
  rc=${PIPESTATUS[0]}
  echo "== $check: rc=$rc in $(( $(date +%s) - start )) s"
  [ "$rc" = 0 ] || status=1
done
exit $status
