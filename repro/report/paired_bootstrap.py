"""Paired bootstrap over benchmark items (numpy only; no torch, no models).

The statistic of a model is the unweighted mean over tasks of its task accuracy (the suite "average").
Its difference to a reference model (the base, or the best single checkpoint), evaluated on the same
items, is a sum over tasks of (1 / T) * sum_i d_i / N_t with d_i = model_i - reference_i in {-1, 0, 1}.

One bootstrap resample draws N_t items with replacement within each task t, the same items for every
model and for the reference (paired). Only the *pattern* of an item matters -- the vector of its d values
over the models compared -- so drawing N_t items uniformly is exactly drawing pattern counts from a
multinomial(N_t, pattern frequencies): `numpy.random.Generator.multinomial` over the distinct patterns,
for all resamples at once. This is the ordinary item bootstrap, not an approximation, and costs
O(resamples x distinct patterns) instead of O(resamples x items).

`cell_bootstrap` adds the subset draw on top (hierarchical): per resample, the K models of a table cell
(its random subsets) are resampled with replacement, and the items are resampled once for all of them.
It returns per-model replicates (whose marginals are each model's paired bootstrap), the cell's mean
delta and beat-share replicates, and percentile intervals.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
# A delta (accuracy units, 0..1) counts as a gain only above this: equal accuracies summed in another
# order differ by ~1e-16, while the smallest real difference (one item of the largest suite) is > 1e-6.
TIE_TOLERANCE = 1e-9
LEVEL = 0.95


@dataclass(frozen=True)
class CellBootstrap:
    observed: np.ndarray  # (K,) observed delta per model (accuracy units, 0..1)
    replicates: np.ndarray  # (B, K) item-resampled deltas per model (shared items)
    cell_mean: np.ndarray  # (B,) mean delta of the cell with subsets and items resampled
    cell_share: np.ndarray  # (B,) share of resampled models beating the reference

    def model_interval(self, level: float = LEVEL) -> np.ndarray:
        """(K, 2) percentile interval of each model's paired delta."""
        alpha = (1 - level) / 2
        return np.quantile(self.replicates, [alpha, 1 - alpha], axis=0).T

    def significant_gains(self, level: float = LEVEL) -> np.ndarray:
        """(K,) bool: the model's interval lies entirely above 0."""
        return self.model_interval(level)[:, 0] > TIE_TOLERANCE

    def mean_interval(self, level: float = LEVEL) -> tuple[float, float]:
        alpha = (1 - level) / 2
        lo, hi = np.quantile(self.cell_mean, [alpha, 1 - alpha])
        return float(lo), float(hi)

    def share_interval(self, level: float = LEVEL) -> tuple[float, float]:
        alpha = (1 - level) / 2
        lo, hi = np.quantile(self.cell_share, [alpha, 1 - alpha])
        return float(lo), float(hi)


def _pattern_counts(n_items: int, frequencies: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, U) counts of each item pattern in `resamples` draws of n_items items with replacement."""
    return rng.multinomial(n_items, frequencies / n_items, size=resamples)


def _index_counts(n_items: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, N) how often each item is drawn: n_items uniform draws per resample, counted."""
    dtype = np.int32 if resamples * n_items < 2**31 else np.int64  # 32-bit draws are about twice as fast
    drawn = rng.integers(0, n_items, size=(resamples, n_items), dtype=dtype)
    drawn += (np.arange(resamples, dtype=dtype) * n_items)[:, None]
    return np.bincount(drawn.ravel(), minlength=resamples * n_items).reshape(resamples, n_items)


def task_replicates(flags: np.ndarray, resamples: int, rng: np.random.Generator, *,
                    method: str = "auto", chunk_items: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """flags: (N, M) 0/1 correctness of M models on the same N items of one task.

    Returns (observed (M,), replicates (B, M)) of each model's accuracy on the task, every resample drawing
    the same items for all M models. `method`: "patterns" (multinomial over distinct item patterns, cheap
    when few patterns), "items" (draw item indices), or "auto" (the cheaper one).
    """
    flags = np.asarray(flags)
    n_items = flags.shape[0]
    patterns, frequencies = np.unique(flags, axis=0, return_counts=True)  # (U, M), (U,)
    observed = frequencies @ patterns / n_items
    if len(patterns) == 1:
        return observed, np.broadcast_to(observed, (resamples, flags.shape[1])).copy()
    if method == "patterns" or (method == "auto" and 8 * len(patterns) <= n_items):
        counts = _pattern_counts(n_items, frequencies, resamples, rng)
        return observed, counts @ patterns.astype(np.float64) / n_items
    values = flags.astype(np.float32)
    out = np.empty((resamples, flags.shape[1]))
    step = max(1, chunk_items // n_items)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        out[start:stop] = _index_counts(n_items, stop - start, rng).astype(np.float32) @ values
    return observed, out / n_items


def accuracy_replicates(task_flags: list[np.ndarray], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        method: str = "auto", threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per task (N_t, M) flags of M models -> (observed (M,), replicates (B, M)) of the unweighted task mean.

    Items are resampled within each task, identically for every model (so any difference of two columns is a
    paired bootstrap of that difference). Each task has its own random stream (spawned from `seed`), so the
    result is the same whether tasks run one after another or in `threads` threads (default: the CPUs;
    numpy's generators and BLAS release the GIL).
    """
    if not task_flags:
        raise ValueError("no tasks to bootstrap")
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(len(task_flags))]
    m = np.asarray(task_flags[0]).shape[1]

    def one(t: int):
        return task_replicates(task_flags[t], resamples, streams[t], method=method)

    workers = max(1, min(threads or os.cpu_count() or 1, len(task_flags), 4))
    observed, replicates = np.zeros(m), np.zeros((resamples, m))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(task_flags), workers):  # a batch at a time: bounded memory
            for obs, rep in pool.map(one, range(start, min(start + workers, len(task_flags)))):
                observed += obs  # summed in task order: identical bits whatever the thread count
                replicates += rep
    return observed / len(task_flags), replicates / len(task_flags)


def paired_bootstrap(reference: list[np.ndarray], model: list[np.ndarray], *, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, level: float = LEVEL, method: str = "auto") -> tuple[float, float, float]:
    """(observed delta, low, high): the paired item bootstrap of one model against its reference.

    reference, model: per task, the 0/1 flags of the same items in the same order.
    """
    flags = [np.stack([np.asarray(m_t), np.asarray(r_t)], axis=1) for m_t, r_t in zip(model, reference, strict=True)]
    observed, replicates = accuracy_replicates(flags, resamples=resamples, seed=seed, method=method)
    delta = replicates[:, 0] - replicates[:, 1]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(delta, [alpha, 1 - alpha])
    return float(observed[0] - observed[1]), float(lo), float(hi)


def cell_bootstrap(observed: np.ndarray, replicates: np.ndarray, columns: list[int], reference: int | None, *,
                   seed: int = 0, resample_models: bool = True) -> CellBootstrap:
    """Hierarchical bootstrap of one table cell from a base's shared accuracy replicates.

    columns: the cell's models (its subsets); reference: the column of the base or best checkpoint. Per
    resample the cell's models are drawn with replacement (the subset draw) and each drawn model's delta
    uses that resample's items (the item draw, shared by all models and the reference). With reference None
    the cell's accuracies themselves are resampled (error bars of a mean accuracy).
    """
    deltas = replicates[:, columns] - (0.0 if reference is None else replicates[:, [reference]])  # (B, K)
    k, resamples = len(columns), replicates.shape[0]
    if resample_models and k > 1:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=resamples) / k  # (B, K)
    else:
        weights = np.full((resamples, k), 1.0 / k)
    cell_mean = np.einsum("bk,bk->b", weights, deltas)
    cell_share = np.einsum("bk,bk->b", weights, (deltas > TIE_TOLERANCE).astype(float))
    point = observed[columns] - (0.0 if reference is None else observed[reference])
    return CellBootstrap(point, deltas, cell_mean, cell_share)
