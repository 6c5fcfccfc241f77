"""A synthetic experiment store for report-layer tests: plan, result records and per-item files, no models.

Each model's correctness on every item is drawn from its own accuracy, seeded; the evaluation layer's own
item writer stores them, so the report layer reads exactly the stored format.
"""

from __future__ import annotations

import numpy as np

from repro.evaluate.outcome import write_items
from repro.plan import Job, Plan
from repro.results import ResultRecord, ResultsStore

TASKS = {"alpha": 40, "beta": 25, "gamma": 30}


def build_plan(bases=("m1", "m2"), singles=4, sizes=(2, 4), subsets=3, methods=(("task_arithmetic", "TA"),)):
    jobs, plan_subsets = [], {}
    for base in bases:
        jobs.append(Job(f"{base}-base", "base", base, 0))
        jobs += [Job(f"{base}-s{i}", "single", base, 1, (i,)) for i in range(1, singles + 1)]
        plan_subsets[base] = {}
        for n in sizes:
            chosen = [tuple(range(1 + k % (singles - n + 1), 1 + k % (singles - n + 1) + n)) for k in range(subsets)]
            plan_subsets[base][n] = chosen
            for name, label in methods:
                jobs += [Job(f"{base}-{name}-n{n}-{k}", "merge", base, n, s, name, label, {})
                         for k, s in enumerate(chosen)]
    return Plan("synthetic", "f" * 64, 0, plan_subsets, tuple(jobs))


def write_store(tmp_path, plan, accuracy, *, seed=0, skip=()):
    """accuracy(job) -> probability of a correct item. Jobs in `skip` get no result."""
    store = ResultsStore(tmp_path)
    rng = np.random.default_rng(seed)
    for job in plan.jobs:
        if job.id in skip:
            continue
        items, scores = {}, []
        for task, n_items in TASKS.items():
            flags = (rng.random(n_items) < accuracy(job)).astype(int)
            items[task] = [(str(i), int(f)) for i, f in enumerate(flags)]
            scores.append({"task": task, "metric": "acc", "value": float(flags.mean()), "primary": True})
        path = write_items(store.items_path(job.id), items)
        average = float(np.mean([s["value"] for s in scores]))
        store.write_result(ResultRecord.from_json({"job": job.to_json(), "config": {"name": "synthetic", "hash": "f" * 64},
                            "merge": None, "scores": scores, "average": average,
                            "items_file": str(path.relative_to(store.root)), "finished_at": "2026-01-01T00:00:00"}))
    return store
