"""What a machine lacks to run a config for real: GPU, network/pinned revisions, downloaded checkpoints."""

from __future__ import annotations

import os

from repro.config import LoadedConfig


def preflight_problems(loaded: LoadedConfig) -> list[str]:
    problems: list[str] = []
    cfg = loaded.config
    evaluates = bool(cfg.merge.sizes or cfg.sweeps or cfg.homogeneous is not None)  # geometry alone needs no GPU
    wants_gpu = cfg.evaluation.device in ("auto", "cuda") and cfg.world is None and evaluates
    if wants_gpu or cfg.evaluation.device == "cuda" or cfg.merge.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append("no CUDA GPU visible (the paper's models need one; use the Docker image with "
                            "`docker run --gpus all ...` on a GPU machine)")
    if cfg.lockfile is None:
        return problems
    lock = loaded.lock
    from repro.hub import local_model_dir

    models_dir = loaded.resolve(cfg.models_dir)
    missing, unresolved, gated = [], [], []
    for base in cfg.bases:
        for repo_id in [lock.bases[base].model, *(e.repo_id for e in lock.pool(base))]:
            entry = lock.entry(repo_id)
            if entry.revision is None:
                unresolved.append(repo_id)
            if entry.gated:
                gated.append(repo_id)
            if not (local_model_dir(models_dir, repo_id) / "config.json").is_file():
                missing.append(repo_id)
    if unresolved:
        problems.append(f"{len(unresolved)} checkpoint(s) in {cfg.lockfile} have no pinned revision: run "
                        "`make lock` (needs network and HF_TOKEN)")
    if missing:
        problems.append(f"{len(missing)} checkpoint(s) not downloaded to {models_dir} (e.g. {missing[0]}): run "
                        "`make download` (needs network or --mirror, ~16 GB per 8B model)")
    if missing and gated and not os.environ.get("HF_TOKEN"):
        problems.append(f"HF_TOKEN is not set but {len(set(gated))} gated model(s) must be downloaded "
                        f"(e.g. {gated[0]}): accept the license on the model page and export HF_TOKEN")
    return problems
