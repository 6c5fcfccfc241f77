"""Fixed, seeded per-task item samples: the same items of each task for every model (paired comparisons).

`sample_indices(task, n_docs, per_task, seed)` depends only on its arguments -- never on the model, the
order of evaluation or other tasks -- so every model of an experiment is scored on identical items and
every comparison between two models stays paired. Passed to lm-eval as `samples` (doc indices per task).
"""

from __future__ import annotations

import zlib

import numpy as np


def sample_indices(task: str, n_docs: int, per_task: int, seed: int) -> list[int]:
    """Sorted doc indices: `per_task` of `n_docs` drawn without replacement (all of them if fewer)."""
    if n_docs <= per_task:
        return list(range(n_docs))
    rng = np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])
    return sorted(int(i) for i in rng.choice(n_docs, size=per_task, replace=False))


def samples_for(tasks: dict, per_task: int, seed: int) -> dict[str, list[int]]:
    """lm-eval `samples` for loaded leaf tasks (name -> Task with `eval_docs`)."""
    return {name: sample_indices(name, len(task.eval_docs), per_task, seed) for name, task in sorted(tasks.items())}
