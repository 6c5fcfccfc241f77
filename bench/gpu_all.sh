#!/bin/bash
# One GPU-machine call for every GPU check of the kit.
# Needs, at the repository root: .whl/ (wheels of mergekit, lm-eval, transformers 5.24 and their
# dependencies missing from the GPU image; see docs/benchmarks.md) and .gpu/ (assets written here by
# the bench/gpu_*_prepare.sh scripts). Each check (NAME:SECONDS in GPU_CHECKS) runs under its own time limit; its output is appended to
# $OUT/gpu_all.log (the checks write their own tables to $OUT; the device tool returns at most 8 files).
set -u
OUT=${OUT:-runs/bench/gpu}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >/tmp/gpu-install.log 2>&1 || { echo "wheel install failed"; tail -5 /tmp/gpu-install.log; exit 1; }
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys,torch,transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
status=0
for check in ${GPU_CHECKS:-merge:225 evaluate:185 methods:80}; do
  limit=${check#*:}; check=${check%%:*}
  script=bench/gpu_$check.sh
  [ -f "$script" ] || { echo "== $check: $script missing, skipped"; continue; }
  echo "== $check (limit $limit s)"
  start=$(date +%s)
  timeout "$limit" bash "$script" 2>&1 | tee -a "$OUT/gpu_all.log" | tail -40
  rc=${PIPESTATUS[0]}
  echo "== $check: rc=$rc in $(( $(date +%s) - start )) s"
  [ "$rc" = 0 ] || status=1
done
exit $status
