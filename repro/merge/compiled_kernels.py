"""The TIES trim's hot loops, compiled by numba (free of the GIL, machine code cached on disk).

- `boundary_range(values, index, k)`: libstdc++'s introsort loop down to the range holding position k,
  as `repro.merge.stock_topk._boundary_range_vectorized` computes it (the same result, tested): each
  `partition` lists its two scans' stops without branches, finds where they cross, then swaps.
- `trim(delta, threshold, tied, start)`: zero in place the entries of the float32 chunk `delta` (flat
  offset `start`) with |d| <= threshold whose flat index is not in the sorted `tied`, as mergekit does
  (`d * 0.0`: the sign of zero kept), in one pass without temporaries.

Importing this module imports numba (about 0.5 s); each function compiles, or loads its cached machine
code, on its first call. `repro.merge.stock_topk.compiled_kernels` imports it where numba is installed.
"""

from __future__ import annotations

import numba
import numpy as np


def cached_njit(function):
    """numba.njit without the GIL, its machine code cached on disk (next to this file, or in the user's
    cache directory where that is read-only); compiled in every process where neither is writable."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


@cached_njit
def partition(values, index, first, last, left, right):  # pragma: no cover - compiled
    """__unguarded_partition_pivot on [first, last), as `_partition` computes it: the scans' stops
    listed without branches, the crossing found by bisection, then the swaps."""
    a, b, c = first + 1, first + (last - first) // 2, last - 1
    if values[a] > values[b]:
        pick = b if values[b] > values[c] else (c if values[a] > values[c] else a)
    elif values[a] > values[c]:
        pick = a
    else:
        pick = c if values[b] > values[c] else b
    values[first], values[pick] = values[pick], values[first]
    index[first], index[pick] = index[pick], index[first]
    pivot = values[first]
    n_left = 0
    for i in range(first + 1, last):  # the left scan stops where !(v > pivot)
        left[n_left] = i
        n_left += values[i] <= pivot
    n_right = 0
    for i in range(last - 1, first, -1):  # the right scan (from the end) stops where !(pivot > v)
        right[n_right] = i
        n_right += values[i] >= pivot
    low, high = 0, min(n_left, n_right)
    while low < high:  # the first pair of stops at which the scans have crossed
        middle = (low + high) // 2
        if left[middle] >= right[middle]:
            high = middle
        else:
            low = middle + 1
    m = low
    cut = last
    if m < n_left:
        cut = left[m]
    if m > 0 and right[m - 1] < cut:
        cut = right[m - 1]
    for t in range(m):
        x, y = left[t], right[t]
        values[x], values[y] = values[y], values[x]
        index[x], index[y] = index[y], index[x]
    return cut

@cached_njit
def boundary_range(values, index, k):  # pragma: no cover - compiled
    first, last = 0, values.size
    depth = 0
    size = values.size
    while size > 1:
        size >>= 1
        depth += 1
    depth *= 2
    left = np.empty(max(values.size, 1), dtype=index.dtype)
    right = np.empty(max(values.size, 1), dtype=index.dtype)
    while first < k < last and last - first > 16:
        if depth == 0:
            return -1, -1
        depth -= 1
        cut = partition(values, index, first, last, left, right)
        if k > cut:
            first = cut
        else:
            last = cut
    return first, last


@cached_njit
def trim(delta, threshold, tied, start):  # pragma: no cover - compiled
    position = np.searchsorted(tied, start)
    one, zero = np.float32(1.0), np.float32(0.0)
    for j in range(delta.size):
        keep = abs(delta[j]) > threshold
        if position < tied.size and tied[position] == start + j:
            keep = True
            position += 1
        delta[j] = delta[j] * (one if keep else zero)
