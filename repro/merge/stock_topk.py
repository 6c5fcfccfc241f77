"""The k entries stock mergekit's TIES keeps, found without sorting: std::sort's choice among ties, replayed.

mergekit 0.1.5's `sparsify.magnitude` keeps `torch.argsort(|delta|.float(), descending=True)[:k]`. On the
CPU, torch sorts a float tensor with libstdc++'s `std::sort` (introsort, not stable) on (value, index)
pairs, comparing values only, so which of the entries equal to the k-th largest value are kept depends on
the sort's partition steps. Only the partition steps of the ranges that contain the boundary between
positions k-1 and k decide which entries end up before it: a range entirely on one side of the boundary
is only reordered within itself. So the same result is obtained by replaying libstdc++'s introsort on the
range holding the boundary only (a quickselect: O(n) instead of O(n log n)), each partition vectorized:

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


def _value(keys: np.ndarray, position: int) -> int:
    return int(keys[position]) >> 32


def _swap(keys: np.ndarray, a: int, b: int) -> None:
    keys[a], keys[b] = keys[b], keys[a]


def _move_median_to_first(keys, result: int, a: int, b: int, c: int) -> None:
    """libstdc++'s __move_median_to_first with torch's comparator (x before y iff value x > value y)."""
    va, vb, vc = _value(keys, a), _value(keys, b), _value(keys, c)
    if va > vb:
        if vb > vc:
            _swap(keys, result, b)
        elif va > vc:
            _swap(keys, result, c)
        else:
            _swap(keys, result, a)
    elif va > vc:
        _swap(keys, result, a)
    elif vb > vc:
        _swap(keys, result, c)
    else:
        _swap(keys, result, b)


def _partition(keys: np.ndarray, first: int, last: int, k: int) -> int:
    """libstdc++'s __unguarded_partition_pivot on [first, last); returns (cut, whether the boundary k is
    """
    mid = first + (last - first) // 2
    _move_median_to_first(keys, first, first + 1, mid, last - 1)
    pivot = _value(keys, first)
    segment = keys[first + 1 : last]
    # The left scan stops where !(v > pivot), the right scan (from the end) where !(pivot > v); the t-th
    # stops of both scans are swapped while they have not crossed (scans read untouched entries only).
    left = np.flatnonzero(segment < ((pivot + 1) << 32)) + (first + 1)
    right = np.flatnonzero(segment >= (pivot << 32))[::-1] + (first + 1)
    # m = the first t at which the scans have crossed (left[t] - right[t] increases with t): bisect.
    low, high = 0, min(left.size, right.size)
    while low < high:
        middle = (low + high) // 2
        if left[middle] >= right[middle]:
            high = middle
        else:
            low = middle + 1
    m = low
    # Where the left scan stops after the last swap: its next original stop, or the last swapped-in entry.
    stops = ([int(left[m])] if m < left.size else []) + ([int(right[m - 1])] if m else [])
    cut = min(stops)
    if m:
        lo, hi = left[:m], right[:m]  # lo < cut <= hi
        if k <= cut:  # the search goes on left of the cut: what lands right of it no longer matters
            keys[lo] = keys[hi]
        else:  # every entry left of the cut is kept: both sides
            keys[lo], keys[hi] = keys[hi], keys[lo].copy()
    return cut


def stock_kept_ties(magnitude: torch.Tensor, k: int) -> tuple[float, torch.Tensor]:
    """(t, tied): stock's top k of the flat, finite float32 `magnitude` (CPU) are the entries > t and the
    entries == t whose flat indices are in `tied` (int64, sorted)."""
    flat = magnitude.reshape(-1).contiguous()
    total = flat.numel()
    if total >= 1 << 32:
        return _by_argsort(magnitude, k)
    # One int64 key per entry: the value's bits (non-negative float32 bits order like the floats) above
    # the flat index, so one array is partitioned and a comparison of values is one of keys.
    keys = flat.view(torch.int32).numpy().astype(np.int64) << 32
    keys |= np.arange(total, dtype=np.int64)
    first, last = 0, total
    depth = 2 * (total.bit_length() - 1) if total else 0
    while first < k < last and last - first > INSERTION_THRESHOLD:
        if depth == 0:  # libstdc++ would heapsort this range: take stock's answer from stock's own sort
            return _by_argsort(magnitude, k)
        depth -= 1
        cut = _partition(keys, first, last, k=k)
        if k > cut:
            first = cut
        else:
            last = cut
    if first < k < last:  # the final insertion sort orders the small range holding the boundary, stably
        block = keys[first:last]
        keys[first:last] = block[np.argsort(-(block >> 32), kind="stable")]
    kept = keys[:k]
    threshold = int(kept.min()) >> 32
    tied = np.sort(kept[(kept >> 32) == threshold] & 0xFFFFFFFF)
    return float(np.array(threshold, dtype=np.int32).view(np.float32)), torch.from_numpy(tied)


def _by_argsort(magnitude: torch.Tensor, k: int) -> tuple[float, torch.Tensor]:
    flat = magnitude.reshape(-1)
    top = torch.argsort(flat, descending=True)[:k]
    threshold = flat[top].min()
    tied = top[flat[top] == threshold]
    return float(threshold), torch.sort(tied).values
