"""What a machine lacks to run a config for real (GPU, pinned revisions, downloads, HF_TOKEN), and whether
the pinned checkpoints will merge at all: `checkpoint_report` reads only their config.json and
tokenizer_config.json (repro.hub.compatibility), before any multi-GB download."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import HubError
from repro.facts.config import LoadedConfig
from repro.hub import local_model_dir
from repro.hub.compatibility import FactsRequest, compare, human_bytes, read_facts
from repro.hub.errors import RepoProblem
from repro.runner.driver import driver_problem


def gpu_problem() -> str | None:
    """None when torch sees a CUDA GPU, else one line saying why not and what to do."""
    # torch: deferred so that importing this module does not load it
    import torch

    too_old = driver_problem(torch.version.cuda)  # first: an old driver also hides the GPU from torch
    if too_old:
        return too_old
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return (f"no CUDA GPU: this torch ({torch.__version__}) is a CPU build; the paper's models need a GPU: "
                "use the Docker image (`docker run --gpus all ...`) or install the CUDA build of torch")
    return (f"no CUDA GPU visible: torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no "
            "GPU; on a GPU machine run the container with `--gpus all` (NVIDIA Container Toolkit) and check "
            "that `nvidia-smi` works")


def preflight_problems(loaded: LoadedConfig, downloads_pending: bool = False, gpu_here: bool = True) -> list[str]:
    """What stops `loaded` from running here. `downloads_pending`: checkpoints not downloaded yet are not a
    problem (`repro reproduce` downloads them next), but a gated one without HF_TOKEN still is. `gpu_here`
    False: the jobs run elsewhere (SLURM from a login node), so this machine's GPU is not checked."""
    problems: list[str] = []
    cfg = loaded.config
    evaluates = bool(cfg.merge.sizes or cfg.sweeps or cfg.homogeneous is not None)  # geometry alone needs no GPU
    wants_gpu = cfg.evaluation.device in ("auto", "cuda") and cfg.world is None and evaluates
    if gpu_here and (wants_gpu or cfg.evaluation.device == "cuda" or cfg.merge.device == "cuda"):
        gpu = gpu_problem()
        if gpu:
            problems.append(gpu)
    if cfg.lockfile is None:
        return problems
    lock = loaded.lock
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
    if missing and not downloads_pending:
        problems.append(f"{len(missing)} checkpoint(s) not downloaded to {models_dir} (e.g. {missing[0]}): run "
                        "`make download` (needs network or --mirror, ~16 GB per 8B model)")
    if missing and gated and not os.environ.get("HF_TOKEN"):
        problems.append(f"HF_TOKEN is not set but {len(set(gated))} gated model(s) must be downloaded "
                        f"(e.g. {gated[0]}): accept the license on the model page and export HF_TOKEN")
    return problems


@dataclass
class CheckpointReport:
    """Per base: the facts of its base and checkpoints (table lines), what would break, download and disk."""

    lines: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)  # "repo: message" that stop the run
    notes: list[str] = field(default_factory=list)  # what the merge changes, without stopping
    fetched: list[tuple[str, str]] = field(default_factory=list)  # (repo_id, file) read from the hub


def config_repos(loaded: LoadedConfig) -> dict[str, list[str]]:
    """base name -> [base repo, its checkpoints] that the config merges (pool and homogeneous groups)."""
    cfg, lock = loaded.config, loaded.lock
    bases = list(cfg.bases)
    if cfg.homogeneous is not None:
        bases += [b for b in cfg.homogeneous.bases if b not in bases]
    out = {}
    for name in bases:
        base = lock.base(name)
        repos = [base.model]
        if name in cfg.bases:
            repos += base.in_the_wild
        if cfg.homogeneous is not None and name in cfg.homogeneous.bases:
            groups = {g for exp in cfg.homogeneous.experiments for g in exp.groups}
            repos += [r for g in sorted(groups) if g in base.homogeneous for r in base.homogeneous[g]]
        out[name] = list(dict.fromkeys(repos))
    return out


def checkpoint_report(loaded: LoadedConfig, api=None, token: str | None = None) -> CheckpointReport:
    """Compare every pinned checkpoint of the config with its base from their small files only."""
    report = CheckpointReport()
    cfg = loaded.config
    if cfg.lockfile is None:
        return report
    if api is None:
        # huggingface_hub: deferred so that importing this module does not load it
        from huggingface_hub import HfApi

        api = HfApi()
    models_dir = loaded.resolve(cfg.models_dir)
    request = FactsRequest(api=api, models_dir=models_dir, token=token)
    facts: dict[str, object] = {}
    try:
        for base_name, repos in config_repos(loaded).items():
            rows = []
            for repo_id in repos:
                if repo_id not in facts:
                    try:
                        facts[repo_id] = read_facts(loaded.lock.entry(repo_id), request)
                    except RepoProblem as exc:
                        facts[repo_id] = None
                        report.blocking.append(f"{repo_id}: cannot read its config: {exc}")
                rows.append(facts[repo_id])
            base = rows[0]
            report.lines.append(f"{base_name}: base {repos[0]}")
            report.lines.append(f"  {'checkpoint':52} {'architecture':22} {'hidden':>6} {'layers':>6} "
                                f"{'vocab':>7} {'tied':>5} {'weights':>11} {'download':>9}")
            for repo_id, row in zip(repos, rows, strict=True):
                if row is None:
                    report.lines.append(f"  {repo_id:52} (unreadable)")
                    continue
                weights = "pickle" if row.pickle_only else "safetensors"
                size = "present" if row.present else human_bytes(row.download_bytes)
                report.lines.append(
                    f"  {repo_id[:52]:52} {str(row.architecture)[:22]:22} {str(row.shapes['hidden_size']):>6} "
                    f"{str(row.shapes['num_hidden_layers']):>6} {str(row.vocab_rows):>7} "
                    f"{ {True: 'yes', False: 'no', None: '?'}[row.tied_embeddings]:>5} {weights:>11} {size:>9}"
                )
                if base is None:
                    continue
                for finding in compare(base, row, cfg.merge.vocab_mismatch):
                    text = f"{finding.repo_id}: {finding.message}"
                    (report.blocking if finding.blocking else report.notes).append(text)
    except HubError as exc:  # the hub is out of reach (offline, network): stop asking it
        report.blocking.append(f"checkpoint compatibility not checked: {exc}")
        report.fetched = list(request.downloaded)
        return report
    report.fetched = list(request.downloaded)
    _disk_lines(report, [f for f in facts.values() if f is not None], models_dir, cfg.merge.min_free_disk_gb)
    return report


def _disk_lines(report: CheckpointReport, facts: list, models_dir: Path, scratch_gb: float) -> None:
    todo = [f for f in facts if not f.present]
    unknown = [f.repo_id for f in todo if f.download_bytes is None]
    download = sum(f.download_bytes or 0 for f in todo)
    needed = download + int(scratch_gb * 1e9)
    where = models_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    report.lines.append(
        f"download: {human_bytes(download)} for {len(todo)} checkpoint(s) ({len(facts) - len(todo)} already "
        f"present); disk needed at {models_dir}: {human_bytes(needed)} (with merge.min_free_disk_gb "
        f"{scratch_gb:g} GB for merged models); free: {human_bytes(free)}"
    )
    if unknown:
        report.notes.append(f"download size unknown for {len(unknown)} checkpoint(s) (e.g. {unknown[0]}): the hub "
                            "listed no sizes")
    if free < needed:
        report.blocking.append(f"{models_dir}: {human_bytes(free)} free but {human_bytes(needed)} needed "
                               "(downloads + merged models): free space or set models_dir elsewhere")
