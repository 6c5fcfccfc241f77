"""The job plan: every model the study evaluates, as jobs with stable ids derived from their content.

Per base: one `base` job (evaluate the base model), one `single` job per checkpoint (n = 1), and one
`merge` job per (method, subset) for every merge size, using the subsets of `repro.subset_sampler` (the
same subsets for every method). A job id is a hash of what determines its result (model identity, method
and parameters, subset, evaluation settings), so adding a method adds jobs and keeps every other id.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.atomic_io import atomic_write_json
from repro.config import LoadedConfig
from repro.subset_sampler import sample_subsets

PLAN_VERSION = 1


@dataclass(frozen=True)
class Job:
    id: str
    kind: str  # "base" | "single" | "merge"
    base: str
    n: int  # number of checkpoints in the model (0 for the base)
    subset: tuple[int, ...] = ()  # checkpoint indices, 1-based, as in the paper's figures
    method: str | None = None
    label: str | None = None  # display name of the method configuration
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["subset"] = list(self.subset)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Job:
        return cls(**{**data, "subset": tuple(data["subset"])})


@dataclass(frozen=True)
class Plan:
    config_name: str
    config_hash: str
    seed: int
    subsets: dict[str, dict[int, list[tuple[int, ...]]]]  # base -> n -> subsets
    jobs: tuple[Job, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per base: number of jobs per kind/method label."""
        out: dict[str, Counter] = {}
        for job in self.jobs:
            key = job.kind if job.kind != "merge" else f"merge:{job.label}"
            out.setdefault(job.base, Counter())[key] += 1
        return {base: dict(counter) for base, counter in out.items()}

    def to_json(self) -> dict:
        return {
            "version": PLAN_VERSION,
            "config": self.config_name,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "subsets": {
                base: {str(n): [list(s) for s in subsets] for n, subsets in by_n.items()}
                for base, by_n in self.subsets.items()
            },
            "jobs": [job.to_json() for job in self.jobs],
        }


def _job_id(content: dict) -> str:
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def build_plan(loaded: LoadedConfig) -> Plan:
    from repro.merge.registry import METHODS, resolve_method_params

    cfg = loaded.config
    evaluation = {"suite": cfg.evaluation.suite, "dtype": cfg.evaluation.dtype, "limit": cfg.evaluation.limit}
    merge_settings = {"vocab_mismatch": cfg.merge.vocab_mismatch, "out_dtype": cfg.merge.out_dtype}
    jobs: list[Job] = []
    subsets: dict[str, dict[int, list[tuple[int, ...]]]] = {}
    for base in loaded.base_names:
        pool_size = loaded.pool_size(base)

        def add(kind: str, subset: tuple[int, ...], method=None, label=None, params=None, base=base) -> None:
            content = {
                "kind": kind,
                "models": model_identity(loaded, base, subset),
                "method": method,
                "params": params or {},
                "evaluation": evaluation,
                "merge": merge_settings if kind == "merge" else None,
            }
            jobs.append(Job(_job_id(content), kind, base, len(subset), subset, method, label, params or {}))

        add("base", ())
        for index in range(1, pool_size + 1):
            add("single", (index,))
        by_n = {
            n: sample_subsets(pool_size, n, cfg.merge.subsets_per_size, seed=cfg.seed, base=base)
            for n in cfg.merge.sizes
        }
        subsets[base] = by_n
        for method in cfg.methods:
            params = resolve_method_params(method.name, method.params)
            label = method.label or METHODS[method.name].title
            for n in cfg.merge.sizes:
                for subset in by_n[n]:
                    add("merge", subset, method.name, label, params)
    ids = [job.id for job in jobs]
    if len(set(ids)) != len(ids):  # only possible if two identical jobs were configured
        raise ValueError("duplicate jobs in plan")
    return Plan(cfg.name, loaded.config_hash, cfg.seed, subsets, tuple(jobs))


def write_plan(plan: Plan, runs_dir: Path) -> Path:
    return atomic_write_json(runs_dir / "plan.json", plan.to_json())
