"""Reuse finished jobs of other experiments: a job is identified by its content id, so a sweep's base and
single-checkpoint evaluations (or a sweep point equal to a main-run merge) that the main run already
finished are copied from runs/<other>/ instead of being recomputed (`reuse_results_from` in the config)."""

from __future__ import annotations

from pathlib import Path

from repro.facts.config import LoadedConfig
from repro.plan import Plan
from repro.results import ResultsStore


def reuse_finished_jobs(loaded: LoadedConfig, plan: Plan, runs_dir: Path) -> dict[str, int]:
    """Adopt every planned, unfinished job that a `reuse_results_from` store has finished.

    Returns {other config name: number of jobs adopted}. The other stores live beside `runs_dir`
    (runs/<name>/); one that does not exist yet adopts nothing.
    """
    return reuse_jobs(loaded, {job.id for job in plan.jobs}, runs_dir)


def reuse_jobs(loaded: LoadedConfig, job_ids: set[str], runs_dir: Path) -> dict[str, int]:
    """`reuse_finished_jobs` for the jobs `job_ids` only. Two processes may adopt the same job at once:
    each writes the same files atomically (temp file, then rename)."""
    store = ResultsStore(runs_dir)
    wanted = set(job_ids) - store.finished_ids()
    adopted: dict[str, int] = {}
    for name in loaded.config.reuse_results_from:
        other = ResultsStore(runs_dir.parent / name)
        if other.root.resolve() == store.root.resolve():
            continue
        found = sorted(wanted & other.finished_ids())
        for job_id in found:
            store.adopt(other, job_id)
        wanted -= set(found)
        adopted[name] = len(found)
    return adopted
