#!/usr/bin/env bash
# `make gpu-check` on the GPU machine without make: the 7 methods merged on CPU and CUDA and compared
# tensor by tensor, lm-eval on CUDA (tools/gpu_check.py). One Llama-3.2-3B-shaped layer keeps it short.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
${PYTHON:-python3} tools/gpu_check.py --layers "${LAYERS:-1}" --checkpoints "${CHECKPOINTS:-2}"
