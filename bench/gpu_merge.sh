#!/usr/bin/env bash
# Issue 11's merge benchmark with the merge on CUDA (for one run on a GPU machine, e.g. an H100).
#
# Base + 12 synthetic 7M-parameter bf16 Llama checkpoints (built in seconds under runs/bench/), TA, TIES and
# Model Stock at n = 12 (fp32 compute, bf16 out), alternated, each run from a cold page cache:
#   ours, in process    merge_checkpoints(device="cuda"): inputs memory-mapped, streamed tensor by tensor to the GPU
#   ours, repro merge   `repro merge --device cuda` (interpreter start-up included)
#   stock               `mergekit-yaml --cuda` on the same mergekit configuration
# Prints and writes the ours/stock table (wall, CPU, peak RSS, input GB/s, ratios, output equality) to
# $OUT/merge-quick-cuda.{md,json}, with the run's log in $OUT/gpu_merge.log.
#
#   OUT=/tmp/out bash bench/gpu_merge.sh            # on the GPU machine (about 2-3 minutes)
#   DEVICE=cpu SIZE=tiny REPRO_BENCH_NO_LOCK=1 bash bench/gpu_merge.sh   # a functional check on the CPU
# Other knobs: SIZE (quick = 7M, tiny = 0.9M parameters), METHODS, REPS (default 1), LIMIT_S (default 220, inside bench/gpu_all.sh's 235 s per check: the benchmark is stopped after that many seconds;
# the per-run lines already in the log remain), PYTHON (default .venv/bin/python if present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-runs/bench/gpu}
DEVICE=${DEVICE:-cuda}
REPS=${REPS:-1}
METHODS=${METHODS:-task_arithmetic ties model_stock}
LIMIT_S=${LIMIT_S:-220}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
log="$OUT/gpu_merge.log"
stamp=$(mktemp)
{
  echo "gpu_merge.sh: device=$DEVICE reps=$REPS methods=$METHODS python=$PYTHON ($(date -u +%FT%TZ))"
  "$PYTHON" -c "import torch, mergekit, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} 2>&1 | tee "$log"
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_merge.sh: no CUDA device visible to torch; run with DEVICE=cpu for the CPU variant" | tee -a "$log"
  exit 2
fi
# shellcheck disable=SC2086  # METHODS is a word list
timeout "$LIMIT_S" "$PYTHON" bench/bench_merge.py "--${SIZE:-quick}" --device "$DEVICE" --reps "$REPS" --skip-extras \
  --methods $METHODS 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
label=merge-${SIZE:-quick}
[ "$DEVICE" = cuda ] && label=$label-cuda
for file in "runs/bench/$label.md" "runs/bench/$label.json"; do
  [ -f "$file" ] && [ "$file" -nt "$stamp" ] && cp "$file" "$OUT/"
done
[ "$status" -eq 124 ] && echo "gpu_merge.sh: stopped after ${LIMIT_S}s; the per-run lines above are what was measured" | tee -a "$log"
rm -f "$stamp"
exit "$status"
