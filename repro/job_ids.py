"""A job's id: a hash of what decides its result. One builder of that content (`job_content`) and of the
input-model identity recorded with it; the ids of existing runs are pinned by tests/test_plan_ids.py."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from repro.facts.config import LoadedConfig
from repro.job_kinds import MERGING_KINDS, JobKind, Part

if TYPE_CHECKING:  # annotations only: the plan imports this module
    from repro.plan import Job

GEOMETRY_VERSION = 1  # bump when the stored geometry of a job changes


def job_content(kind: JobKind, models: dict, *, evaluation: dict | None = None, method: str | None = None,
                params: dict | None = None, merge: dict | None = None, part: Part = Part.GRID) -> dict:
    """What decides a job's result, hence its id. The one builder of this dict: its shapes are pinned by the
    ids of existing runs (tests/test_plan_ids.py), so a field is only ever added where it was absent.

    - a geometry job: the pool's models and GEOMETRY_VERSION (no merge, no evaluation);
    - the base evaluation of the homogeneous experiments: models and evaluation (with its suites) only;
    - every other job: models, method, params, evaluation and the merge settings (None unless it merges).
    """
    if kind is JobKind.GEOMETRY:
        return {"kind": kind, "models": models, "version": GEOMETRY_VERSION}
    if kind is JobKind.BASE and part is Part.HOMOGENEOUS:
        return {"kind": kind, "models": models, "evaluation": evaluation}
    return {
        "kind": kind,
        "models": models,
        "method": method,
        "params": params or {},
        "evaluation": evaluation,
        "merge": merge if kind in MERGING_KINDS else None,
    }


def content_id(content: dict) -> str:
    """A job's id: the first 16 hex digits of the sha256 of its content (`job_content`) as sorted JSON."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def job_models(loaded: LoadedConfig, job: Job) -> dict:
    """The input-model identity recorded with a job's result."""
    if job.checkpoints:
        lock = loaded.lock
        return {
            "base": entry_identity(lock, lock.bases[job.base].model),
            "checkpoints": [entry_identity(lock, r) for r in job.checkpoints],
        }
    return model_identity(loaded, job.base, job.subset)


def model_identity(loaded: LoadedConfig, base: str, subset: tuple[int, ...]) -> dict:
    """What pins the input models of a job: world spec, or lockfile repo ids and revisions."""
    cfg = loaded.config
    if cfg.world is not None:
        return {"world": cfg.world.model_dump(), "base": base, "checkpoints": list(subset)}
    lock = loaded.lock
    base_entry = lock.entry(lock.bases[base].model)
    pool = lock.pool(base)
    return {
        "base": {"repo_id": base_entry.repo_id, "revision": base_entry.revision},
        "checkpoints": [{"index": i, "repo_id": pool[i - 1].repo_id, "revision": pool[i - 1].revision} for i in subset],
    }


def entry_identity(lock, repo_id: str) -> dict:
    return {"repo_id": repo_id, "revision": lock.entry(repo_id).revision}

