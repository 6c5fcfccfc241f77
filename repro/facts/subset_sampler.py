"""Seeded sampling of checkpoint subsets (paper section 3.2).

For each base and merge size n, `subsets_per_size` distinct subsets are drawn uniformly from all C(N, n)
subsets of the N checkpoints (all of them when there are no more than that, e.g. the single full set at
n = N). The random stream depends only on (seed, base name, n), so the subsets never change when methods,
other bases or other sizes are added or removed, and every method merges exactly the same subsets.
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np


def _stream(seed: int, base: str, n: int) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(f"{base}\0{n}".encode()).digest()[:8], "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))


def sample_subsets(pool_size: int, n: int, count: int, *, seed: int, base: str) -> list[tuple[int, ...]]:
    """`count` distinct subsets of size n of checkpoint indices 1..pool_size, each sorted ascending.

    Subsets are returned in the order drawn. When C(pool_size, n) <= count every subset is returned,
    in lexicographic order.
    """
    if not 1 <= n <= pool_size:
        raise ValueError(f"subset size {n} must be between 1 and the pool size {pool_size}")
    if count < 1:
        raise ValueError("count must be >= 1")
    if math.comb(pool_size, n) <= count:
        return [tuple(c) for c in itertools.combinations(range(1, pool_size + 1), n)]
    rng = _stream(seed, base, n)
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < count:
        # A uniformly random n-subset; rejecting repeats keeps the distinct draws uniform.
        subset = tuple(sorted(int(i) + 1 for i in rng.choice(pool_size, size=n, replace=False)))
        if subset not in seen:
            seen.add(subset)
            chosen.append(subset)
    return chosen
