"""The k entries stock mergekit's TIES keeps, found without sorting: std::sort's choice among ties, replayed.

mergekit 0.1.5's `sparsify.magnitude` keeps `torch.argsort(|delta|.float(), descending=True)[:k]`. On the
CPU, torch sorts a float tensor with libstdc++'s `std::sort` (introsort, not stable) on (value, index)
pairs, comparing values only, so which of the entries equal to the k-th largest value are kept depends on
the sort's partition steps. Only the partition steps of the ranges that contain the boundary between
positions k-1 and k decide which entries end up before it: a range entirely on one side of the boundary
is only reordered within itself. So the same result is obtained by replaying libstdc++'s introsort on the
range holding the boundary only (a quickselect: O(n) instead of O(n log n)). Each partition is computed
from the stops of its two scans (a scan reads only entries no swap has touched yet): compiled by numba
(`repro.merge.compiled_kernels`: the stops listed without branches, 4.4 ns per entry on 2 threads), or, where
numba is missing, vectorized with numpy (`_partition`, 3.5x slower). The loop replayed:

  __introsort_loop(first, last, depth):             depth starts at 2 * floor(log2(n))
    while last - first > 16:
      if depth == 0: heapsort the range             (we fall back to a full argsort: never seen in practice)
      depth -= 1
      cut = __unguarded_partition_pivot(first, last)   median of (first+1, mid, last-1) moved to first,
      __introsort_loop(cut, last, depth); last = cut   then Hoare's unguarded partition around it
  __final_insertion_sort(whole array)               stable, never moves an entry across a range boundary

The result is checked against torch.argsort itself on tie-heavy inputs (tests/test_stock_topk.py);
`stock_kept_ties` falls back to torch.argsort whenever the replay cannot vouch for its answer.
"""

from __future__ import annotations

import numpy as np
import torch

INSERTION_THRESHOLD = 16  # libstdc++'s _S_threshold


BLOCK = 4096  # entries per block of the stop counts (finding the t-th stop of a scan)
SMALL = 1 << 16  # partitions of at most this many entries list their stops outright
COMPILED_FROM = 1 << 28  # entries trimmed (in a merge, or one tensor) from which the compiled kernels pay
TASK_ARITHMETIC_COMPILED_FROM = 1 << 31  # entries summed from which TA's compiled pass pays


class _Stops:
    """The positions where one scan of a partition stops (the True entries of `mask`), by rank, without
    listing them all: per-block counts, then one block's entries (small masks: listed)."""

    def __init__(self, mask: np.ndarray, offset: int):
        self.mask, self.offset = mask, offset
        if mask.size <= SMALL:
            self.listed = np.flatnonzero(mask) + offset
            self.count = int(self.listed.size)
            return
        self.listed = None
        whole = mask.size // BLOCK
        counts = np.count_nonzero(mask[: whole * BLOCK].reshape(whole, BLOCK), axis=1)
        if mask.size > whole * BLOCK:
            counts = np.append(counts, np.count_nonzero(mask[whole * BLOCK :]))
        self.cumulative = np.cumsum(counts, dtype=np.int64)
        self.count = int(self.cumulative[-1]) if self.cumulative.size else 0

    def at(self, rank: int) -> int:
        """Position of the rank-th stop from the start (0-based)."""
        if self.listed is not None:
            return int(self.listed[rank])
        block = int(np.searchsorted(self.cumulative, rank, side="right"))
        before = int(self.cumulative[block - 1]) if block else 0
        local = np.flatnonzero(self.mask[block * BLOCK : (block + 1) * BLOCK])
        return self.offset + block * BLOCK + int(local[rank - before])

    def from_end(self, rank: int) -> int:
        return self.at(self.count - 1 - rank)


def _move_median_to_first(values, index, result: int, a: int, b: int, c: int) -> None:
    """libstdc++'s __move_median_to_first with torch's comparator (x before y iff value x > value y)."""
    va, vb, vc = values[a], values[b], values[c]
    if va > vb:
        pick = b if vb > vc else (c if va > vc else a)
    elif va > vc:
        pick = a
    else:
        pick = c if vb > vc else b
    values[result], values[pick] = values[pick], values[result]
    index[result], index[pick] = index[pick], index[result]


def _partition(values: np.ndarray, index: np.ndarray, first: int, last: int, k: int) -> int:
    """libstdc++'s __unguarded_partition_pivot on [first, last); returns the cut. Only the side holding
    the boundary k is written unless it is the right one (every entry left of the cut is kept then)."""
    mid = first + (last - first) // 2
    _move_median_to_first(values, index, first, first + 1, mid, last - 1)
    pivot = values[first]
    segment = values[first + 1 : last]
    # The left scan stops where !(v > pivot), the right scan (from the end) where !(pivot > v); the t-th
    # stops of both scans are swapped while they have not crossed (scans read untouched entries only).
    left = _Stops(segment <= pivot, first + 1)
    right = _Stops(segment >= pivot, first + 1)
    # m = the first t at which the scans have crossed (left[t] - right[t] increases with t): bisect.
    low, high = 0, min(left.count, right.count)
    while low < high:
        middle = (low + high) // 2
        if left.at(middle) >= right.from_end(middle):
            high = middle
        else:
            low = middle + 1
    m = low
    # Where the left scan stops after the last swap: its next original stop, or the last swapped-in entry.
    stops = ([left.at(m)] if m < left.count else []) + ([right.from_end(m - 1)] if m else [])
    cut = min(stops)
    if m:
        lo = np.flatnonzero(left.mask[: left.at(m - 1) - first]) + (first + 1)  # the first m left stops
        split = right.from_end(m - 1)
        hi = (np.flatnonzero(right.mask[split - first - 1 :]) + split)[::-1]  # the last m right stops
        if k <= cut:  # the search goes on left of the cut: what lands right of it no longer matters
            values[lo] = values[hi]
            index[lo] = index[hi]
        else:  # every entry left of the cut is kept: both sides
            values[lo], values[hi] = values[hi], values[lo].copy()
            index[lo], index[hi] = index[hi], index[lo].copy()
    return cut


def _boundary_range_vectorized(values: np.ndarray, index: np.ndarray, k: int) -> tuple[int, int]:
    """The introsort loop down to the range holding the boundary k, each partition vectorized; (-1, -1)
    where libstdc++ would heapsort."""
    first, last = 0, values.size
    depth = 2 * (values.size.bit_length() - 1) if values.size else 0
    while first < k < last and last - first > INSERTION_THRESHOLD:
        if depth == 0:
            return -1, -1
        depth -= 1
        cut = _partition(values, index, first, last, k)
        if k > cut:
            first = cut
        else:
            last = cut
    return first, last


def compiled_kernels():
    """`repro.merge.compiled_kernels` (the numba-compiled replay and trim), or None where numba is not
    installed. Importing it imports numba once per process (Python's module cache); each kernel compiles,
    or loads its cached machine code, on its first call."""
    try:
        # optional: used only when installed
        import repro.merge.compiled_kernels as kernels
    except ImportError:  # numba is a dependency; without it the vectorized replay gives the same answer
        return None
    return kernels


def use_compiled(entries: int, trim: bool = True) -> bool:
    """Whether a merge of `entries` entries (base entries x checkpoints) is worth the compiled kernels:
    loading numba and its cached code costs about 1.1-1.4 s once per process. TIES' trim saves about
    11 ns per entry (2 threads), from 2^28 entries; Task Arithmetic's pass about 0.5 ns (its torch ops
    are cheap already), from 2^31 (a 0.2B model and 12 checkpoints). A merge of small models never
    wins the loading back. `trim`: a pass that trims (TIES' family), else the plain weighted sum."""
    if not trim:
        return entries >= TASK_ARITHMETIC_COMPILED_FROM
    return entries >= COMPILED_FROM


def stock_kept_ties(magnitude: torch.Tensor, k: int, *, compiled: bool | None = None) -> tuple[float, torch.Tensor]:
    """(t, tied): stock's top k of the flat, finite float32 `magnitude` (CPU) are the entries > t and the
    entries == t whose flat indices are in `tied` (int64, sorted). `compiled`: the compiled replay (True),
    the vectorized one (False; tests compare both), or by this tensor's size (None: `use_compiled`)."""
    values = magnitude.reshape(-1).numpy().copy()
    total = values.size
    index = np.arange(total, dtype=np.int32 if total < 2**31 else np.int64)
    if compiled is None:
        compiled = use_compiled(total)
    kernels = compiled_kernels() if compiled else None
    if kernels is not None:
        first, last = kernels.boundary_range(values, index, k)
    else:
        first, last = _boundary_range_vectorized(values, index, k)
    if first < 0:  # libstdc++ would heapsort this range: take stock's answer from stock's own sort
        return _by_argsort(magnitude, k)
    if first < k < last:  # the final insertion sort orders the small range holding the boundary, stably
        order = np.argsort(-values[first:last].astype(np.float64), kind="stable")
        values[first:last], index[first:last] = values[first:last][order], index[first:last][order]
    kept = values[:k]
    threshold = kept.min()
    tied = np.sort(index[:k][kept == threshold]).astype(np.int64)
    return float(threshold), torch.from_numpy(tied)

def _by_argsort(magnitude: torch.Tensor, k: int) -> tuple[float, torch.Tensor]:
    flat = magnitude.reshape(-1)
    top = torch.argsort(flat, descending=True)[:k]
    threshold = flat[top].min()
    tied = top[flat[top] == threshold]
    return float(threshold), torch.sort(tied).values
