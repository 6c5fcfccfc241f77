"""Synthetic stored results for report tests: one result file per job of a config's plan, with values drawn
from a seeded generator (no models). The report layer reads only these files, so every table and figure can
be rendered for the paper's own configs (4 bases x 12 checkpoints x 7 methods) in seconds."""

from __future__ import annotations

import hashlib
import random

from repro.facts.suites import load_suites
from repro.plan import build_plan
from repro.results import ResultRecord, ResultsStore


def _rng(job_id: str, seed: int) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{job_id}".encode()).digest()[:8], "big"))


def _gram(k: int, rng: random.Random) -> list[list[float]]:
    vectors = [[rng.gauss(0, 1) for _ in range(6)] for _ in range(k)]
    return [[sum(a * b for a, b in zip(u, v, strict=True)) for v in vectors] for u in vectors]


def write_synthetic_results(loaded, runs_dir, *, seed: int = 0, keep: float = 1.0, bases=None) -> int:
    """Write a result for (a `keep` fraction of) the jobs of `loaded`'s plan (with `bases`: of those bases
    only); returns how many."""
    plan = build_plan(loaded)
    store = ResultsStore(runs_dir)
    suites = load_suites(loaded.resolve(loaded.config.evaluation.suites_file))
    written = 0
    for job in plan.jobs:
        if bases is not None and job.base not in bases:
            continue
        rng = _rng(job.id, seed)
        if rng.random() >= keep:
            continue
        record = {"job": job.to_json(), "config": {"name": loaded.name, "hash": loaded.config_hash},
                  "models": {"base": {"repo_id": f"org/{job.base}", "revision": "a" * 40}},
                  "packages": {"repro": "0.1.0", "torch": "2.13.0"}, "finished_at": "2026-01-01T00:00:00+00:00"}
        if job.kind == "geometry":
            k = len(job.subset)
            record["geometry"] = {"checkpoints": [str(i) for i in job.subset], "layer_pattern": "x",
                                  "total": _gram(k, rng), "tensors": {},
                                  "layers": {str(i): _gram(k, rng) for i in range(4)}}
        else:
            suite_names = job.suites or (loaded.config.evaluation.suite,)
            tasks = [t.name for name in suite_names for t in suites[name].tasks]
            level = 0.5 + 0.002 * job.n + rng.gauss(0, 0.01)
            scores = {t: min(1.0, max(0.0, level + rng.gauss(0, 0.05))) for t in tasks}
            record["scores"] = [{"task": t, "metric": "acc", "value": v, "stderr": 0.01, "n_shot": 0, "primary": True}
                                for t, v in scores.items()]
            record["average"] = sum(scores.values()) / len(scores)
            record["suite_averages"] = {name: sum(scores[t.name] for t in suites[name].tasks) / len(suites[name].tasks)
                                        for name in suite_names}
            record["merge"] = {"task_vector_l2": 10.0 * job.n * (1 + rng.random())} if job.kind != "single" and \
                job.kind != "base" else None
        store.write_result(ResultRecord.from_json(record))
        written += 1
    return written
