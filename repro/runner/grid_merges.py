"""Grid merges in the runner: a worker's pending in-memory merges of one (base, method, parameters)
computed in one pass (`repro.merge.grid.merge_grid`), then handed out one job at a time.

The paper's protocol merges 76 subsets per base and method; merged one at a time, every merge re-reads
and re-maps all its inputs. When a worker evaluates merged models from memory, the first merge job of a
group computes, in one pass over the tensor names, the merges of the group's jobs that come next in its
list and still have no result, as many as `merge.grid_memory_gb` holds; each later job of the group takes
its merged state dict from here. Each result is identical to merging that subset alone (merge_grid's
contract, tested), so scores and result records do not depend on whether a job was merged in a grid.
Jobs stay what they were: content-hashed ids, one result file each, resumable (a killed worker loses
only merges it had not evaluated yet; they are recomputed on the next run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from repro.merge.grid import merge_grid
from repro.merge.tensor_checks import read_tensor_index
from repro.plan import Job


def grid_key(job: Job) -> tuple | None:
    """Jobs with equal keys can be merged in one pass (same base, method and parameters)."""
    if not job.merges or not job.method:
        return None
    return (job.base, job.method, json.dumps(job.params, sort_keys=True, default=str))


def merged_model_bytes(base_dir: Path, out_dtype: str) -> int:
    """Bytes of one merged model in memory (floating tensors in `out_dtype`), from the base's headers."""
    # torch: deferred so that importing this module does not load it
    import torch

    from repro.merge.tensor_io import ST_DTYPES

    itemsize = getattr(torch, out_dtype).itemsize
    total = 0
    for info in read_tensor_index(base_dir).values():
        dtype = ST_DTYPES.get(info.dtype, torch.float32)
        numel = 1
        for size in info.shape:
            numel *= size
        total += numel * (itemsize if dtype.is_floating_point else dtype.itemsize)
    return total


def grid_peers(job: Job, upcoming: Sequence[Job], finished: set[str], limit: int) -> list[Job]:
    """`job` followed by the jobs of its group after it in `upcoming` that have no result, at most `limit`
    (all of `upcoming` if `job` is not in it)."""
    key = grid_key(job)
    peers, seen = [job], {job.id}
    if key is None:
        return peers
    ids = [other.id for other in upcoming]
    after = upcoming[ids.index(job.id) + 1:] if job.id in ids else upcoming
    for other in after:
        if len(peers) >= limit:
            break
        if other.id not in seen and other.id not in finished and grid_key(other) == key:
            peers.append(other)
            seen.add(other.id)
    return peers


def union_inputs(inputs_per_job: Sequence[Sequence[Path]]) -> tuple[list[Path], list[tuple[int, ...]]]:
    """(every checkpoint once, in order of first use; each job's inputs as indices into that list)."""
    models: list[Path] = []
    position: dict[Path, int] = {}
    subsets = []
    for inputs in inputs_per_job:
        subset = []
        for path in inputs:
            key = Path(path).resolve()
            if key not in position:
                position[key] = len(models)
                models.append(Path(path))
            subset.append(position[key])
        subsets.append(tuple(subset))
    return models, subsets


class GridMerges:
    """Merged state dicts computed ahead for the jobs of one group, taken once each."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._ready: dict = {}  # job id -> MergeResult
        self._model_bytes: dict = {}  # (base dir, out dtype) -> bytes of one merged model

    def take(self, job_id: str):
        """The job's merge if a grid computed it (removed from here), else None."""
        return self._ready.pop(job_id, None)

    def capacity(self, base_dir: Path, out_dtype: str) -> int:
        """How many merged models of this base fit in the budget at once."""
        key = (str(base_dir), out_dtype)
        if key not in self._model_bytes:
            self._model_bytes[key] = max(1, merged_model_bytes(base_dir, out_dtype))
        return int(self.budget_bytes // self._model_bytes[key])

    def compute(self, peers: Sequence[Job], base_dir: Path, inputs_per_job: Sequence[Sequence[Path]],
                merge_grid_kwargs: dict):
        """Merge every peer in one pass; keep all but the first's result here, return the first's.

        Results of an earlier group that were never taken (their jobs ran elsewhere) are dropped first.
        """
        self._ready.clear()
        models, subsets = union_inputs(inputs_per_job)
        results = merge_grid(base_dir, models, subsets, peers[0].method, peers[0].params, **merge_grid_kwargs)
        share = results[0].elapsed_s / len(results)  # the pass's time, shared by its merges
        results = [replace(result, elapsed_s=share) for result in results]
        for job, result in zip(peers[1:], results[1:], strict=True):
            self._ready[job.id] = result
        return results[0]
