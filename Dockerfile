# GPU image of the repro kit: the full paper run (Table 1) on an NVIDIA GPU.
#   docker build -t repro .                                   (or: make docker-build)
#   docker run --gpus all -v hf-cache:/data repro make reproduce-table1   (or: make docker-run)
# The Hugging Face cache lives in the /data volume (HF_HOME=/data/hf); pass HF_TOKEN with -e HF_TOKEN
# for gated checkpoints. Python dependencies are the CI pins (constraints.txt); only torch differs:
# the same version 2.13.0, as the CUDA build from the PyTorch index (TORCH_INDEX_URL).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    VIRTUAL_ENV=/repro/.venv \
    PATH=/repro/.venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Ubuntu 22.04 ships Python 3.11 (python3.11, python3.11-venv) in its own archive. Apt versions follow the
# pinned base image's release; everything Python is pinned by constraints.txt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv make ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /repro

# The venv sits where the Makefile expects it (.venv), so `make` targets use it without reinstalling.
RUN python3.11 -m venv .venv \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY . .

# torch==2.13.0 in constraints.txt is satisfied by the CUDA build above (same version), so it stays.
# The stamp tells `make setup` that this venv is already installed.
RUN pip install --no-cache-dir -c constraints.txt . \
    && python -c "import torch, repro; assert torch.__version__.startswith('${TORCH_VERSION}')" \
    && touch .venv/.installed

VOLUME /data

CMD ["make", "help"]
