"""Run several configs (a config and its appendix configs) with one set of local workers.

Each worker process pays its start-up (imports, lm-eval task loading) once and runs the pending jobs of
the configs in their order: it moves on to the next config when no job of the current one is left
unclaimed (the claims keep two workers off one job, as in repro.runner.local_runner). One worker keeps
its EvaluationSession across configs (its task and token caches are keyed by task contents, limits,
lm-eval version and tokenizer fingerprint, so a later config reuses only what is identical); each config
gets its own JobExecutor (models, worlds, merge settings are per config).

A later config may reuse the finished jobs of an earlier one (`reuse_results_from`): the worker adopts
them when it reaches the config (repro.runner.reuse), and the jobs of the later config that an earlier
config of this run has not finished yet (another worker is on them) are tried last; before one of them
runs, the worker waits until no worker holds it in the earlier config and adopts its result if it
finished there, so no job is computed twice. Results are those of separate `repro run`s, config after
config: the same jobs, ids, scores and adopted records.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from repro.errors import ReproError
from repro.evaluate import EvaluationSession
from repro.facts.config import LoadedConfig, load_config
from repro.plan import Job, Plan
from repro.results import ResultsStore
from repro.runner.claims import ClaimBoard, worker_identity
from repro.runner.local_runner import RunSummary, pending_jobs, run_spawned_workers, run_worker, watch_stores
from repro.runner.reuse import reuse_finished_jobs, reuse_jobs


@dataclass(frozen=True)
class RunTarget:
    """One config of a combined run: its file, its (written) plan and its results folder."""

    config_path: Path
    plan: Plan
    runs_dir: Path


def _reuse_waits(loaded: LoadedConfig, targets: list[RunTarget], index: int) -> dict[str, Path]:
    """Job id -> runs dir of an earlier target of this run that the target `index` reuses from and that
    plans the job without having finished it yet (another worker may be on it)."""
    target = targets[index]
    wanted = {job.id for job in target.plan.jobs}
    out: dict[str, Path] = {}
    for earlier in targets[:index]:
        source = earlier.runs_dir
        if source.parent.resolve() != target.runs_dir.parent.resolve() or source.name not in loaded.config.reuse_results_from:
            continue
        shared = wanted & {job.id for job in earlier.plan.jobs}
        for job_id in shared - ResultsStore(source).finished_ids():
            out.setdefault(job_id, source)
    return out


def _reuse_hook(loaded: LoadedConfig, target: RunTarget, waits: dict[str, Path], poll_s: float = 0.2):
    """run_worker's `reuse(job)` for a later config: for a job an earlier config of this run still had
    pending, wait while a worker holds it there (its claim), then adopt its result if it finished there."""
    owner = worker_identity()

    def reuse(job: Job) -> None:
        source = waits.get(job.id)
        if source is None:
            return
        board = ClaimBoard(source / "claims")
        while (claim := board.try_claim(job.id, owner)) is None:  # free once its holder ends (or died)
            time.sleep(poll_s)
        claim.release()
        reuse_jobs(loaded, {job.id}, target.runs_dir)

    return reuse


def run_targets_in_worker(targets: list[RunTarget], *, retry_failed: bool = False, progress: bool = True,
                          share: tuple[int, int] = (0, 1), loaded: list[LoadedConfig] | None = None) -> list[RunSummary]:
    """One worker (this process): the pending jobs of each target in turn, one EvaluationSession for all.
    `loaded`: the targets' loaded configs (loaded here from their files when not given)."""
    loaded = loaded or [load_config(target.config_path) for target in targets]
    session = EvaluationSession()
    summaries = []
    for index, (config, target) in enumerate(zip(loaded, targets, strict=True)):
        waits = {}
        if index:  # what the earlier configs finished since the main process reused their results
            reuse_finished_jobs(config, target.plan, target.runs_dir)
            waits = _reuse_waits(config, targets, index)
        summaries.append(run_worker(config, target.plan, target.runs_dir, retry_failed=retry_failed,
                                    progress=progress, share=share, eval_session=session,
                                    reuse=_reuse_hook(config, target, waits) if waits else None,
                                    defer=frozenset(waits)))
    return summaries


def run_targets_parallel(targets: list[RunTarget], workers: int, *, retry_failed: bool, progress: bool = True,
                         gpus: list[str] | None = None) -> list[RunSummary]:
    """`run_targets_in_worker` in `workers` spawned processes (as repro.runner.local_runner.run_parallel,
    with worker i on GPU gpus[i % len(gpus)]), showing their joint progress over every target. Returns, per
    target, what its result files say about the jobs that were pending: done (adopted ones included),
    failed, unfinished. A typed error of a worker (e.g. a full disk) is raised here with its message."""
    stores = [ResultsStore(target.runs_dir) for target in targets]
    todo = [{j.id for j in pending_jobs(t.plan, s, retry_failed=retry_failed)} for t, s in zip(targets, stores, strict=True)]
    names = " + ".join(target.plan.config_name for target in targets)
    run_spawned_workers(
        _worker_process, (targets, retry_failed), workers, gpus,
        lambda still_running: watch_stores(list(zip(stores, todo, strict=True)), still_running,
                                           f"{names} ({workers} workers)", progress=progress))
    return [RunSummary.from_results(store, wanted) for store, wanted in zip(stores, todo, strict=True)]


def _worker_process(targets: list[RunTarget], retry_failed: bool, errors, environment: dict[str, str],
                    share: tuple[int, int]) -> None:
    """The body of one spawned worker: the targets in turn; a typed error is reported to the main process."""
    os.environ.update(environment or {})  # its GPU (CUDA_VISIBLE_DEVICES) before anything initializes CUDA
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        run_targets_in_worker(targets, retry_failed=retry_failed, progress=False, share=share)
    except ReproError as error:
        errors.put((type(error).__name__, str(error)))
