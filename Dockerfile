# GPU image of the repro kit: the full paper run on an NVIDIA GPU, and the offline tests anywhere.
#   make docker-build        (docker build, or buildah bud where no docker daemon runs; adds the labels)
#   make docker-run TARGET=reproduce-table1   (this clone at /work, your user, HF_TOKEN by name; docs/container.md)
#   make docker-test         (build, then `make test` and `make smoke` inside the image, offline, no GPU needed)
# Base: plain Debian bookworm (Python 3.11 from Debian), not a CUDA base image: torch 2.13.0 on the public
# package index is the CUDA 13.0 build, and its nvidia-* wheels carry the CUDA runtime libraries; the driver
# comes from the host (`--gpus all`). Python packages are exactly constraints.txt (the CI pins).
# The Hugging Face cache lives in the /data volume (HF_HOME=/data/hf).
# Behind a TLS-intercepting proxy, mount a CA bundle that trusts it into the build and name it (pip uses it;
# it is not copied into the image; mounting it over the image's own bundle would break ca-certificates):
#   buildah bud -v /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro --build-arg BUILD_CA=/run/build-ca.crt ...
FROM debian:bookworm-slim

# Set by `make docker-build` (the kit's version from pyproject.toml, sha256 of constraints.txt); a build
# checks the hash against the constraints.txt it installs.
ARG KIT_VERSION=unset
ARG CONSTRAINTS_SHA256=unset
ARG PIP_INDEX=https://pypi.org/simple
ARG BUILD_CA=/etc/ssl/certs/ca-certificates.crt

LABEL org.opencontainers.image.title="repro" \
      org.opencontainers.image.description="Reproducibility kit: in-the-wild model merging of LLMs (TMLR 2026)" \
      org.opencontainers.image.version="${KIT_VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      repro.kit.version="${KIT_VERSION}" \
      repro.constraints.sha256="${CONSTRAINTS_SHA256}"

# PIP_CONFIG_FILE=/dev/null: pip reads no pip.conf (neither a host's nor one in the image), so torch comes
# from PIP_INDEX (the public index: the CUDA build), never from a local CPU mirror.
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_CONFIG_FILE=/dev/null \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    VIRTUAL_ENV=/repro/.venv \
    PATH=/repro/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Apt versions follow the bookworm release; everything Python is pinned by constraints.txt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv make ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --shell /bin/bash repro \
    && mkdir -p /repro /data/hf \
    && chown repro:repro /repro /data /data/hf

USER 1000:1000
WORKDIR /repro

# The heavy layer: every pinned package (torch, its nvidia-* CUDA wheels, transformers, mergekit, lm-eval,
# the dev tools `make test` uses). It is rebuilt only when constraints.txt changes.
# The venv sits where the Makefile expects it (.venv), so `make` targets use it without reinstalling.
COPY --chown=repro:repro constraints.txt /repro/constraints.txt
RUN if [ "${CONSTRAINTS_SHA256}" != unset ]; then \
        echo "${CONSTRAINTS_SHA256}  constraints.txt" | sha256sum --check --quiet \
        || { echo "error: CONSTRAINTS_SHA256 is not the sha256 of constraints.txt; build with make docker-build" >&2; exit 1; }; \
    fi \
    && python3.11 -m venv .venv \
    && PIP_CERT="${BUILD_CA}" PIP_INDEX_URL="${PIP_INDEX}" pip install -r constraints.txt \
    && python -c "import torch; assert torch.version.cuda, 'torch is a CPU build: ' + torch.__version__"

COPY --chown=repro:repro . .

# The kit itself (editable, like `make setup`); its dependencies are already there. The stamp tells
# `make setup` that this venv is installed.
RUN PIP_CERT="${BUILD_CA}" PIP_INDEX_URL="${PIP_INDEX}" pip install -c constraints.txt -e '.[dev]' \
    && touch .venv/.installed \
    && repro --help >/dev/null

VOLUME /data

CMD ["make", "help"]
