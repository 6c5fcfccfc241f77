"""The TIES trim keeps exactly the entries stock mergekit keeps (torch.argsort, descending, not stable),
ties at the cut-off included, found by replaying std::sort's partitions on the boundary only."""

from __future__ import annotations

import pytest
import torch

from repro.merge.stock_topk import stock_kept_ties


def stock_kept(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """mergekit.sparsify.magnitude's choice: the first k of a full descending argsort."""
    return torch.sort(torch.argsort(magnitude.reshape(-1), descending=True)[:k]).values


def replayed(magnitude: torch.Tensor, k: int, compiled: bool = True) -> torch.Tensor:
    threshold, tied = stock_kept_ties(magnitude, k, compiled=compiled)
    above = torch.nonzero(magnitude.reshape(-1) > threshold).reshape(-1)
    assert above.numel() + tied.numel() == k
    assert bool((magnitude.reshape(-1)[tied] == threshold).all())
    return torch.sort(torch.cat([above, tied])).values


def magnitudes(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    if kind == "levels":  # few distinct values: ties everywhere
        return torch.randint(0, 5, (n,), generator=g).float() * 0.25
    if kind == "bf16":  # |delta| of bf16 checkpoints, as TIES sees them
        base = torch.randn(n, generator=g).bfloat16().float()
        tuned = (base + 0.01 * torch.randn(n, generator=g)).bfloat16().float()
        return (tuned - base).abs()
    if kind == "zeros":  # mostly zeros (an untouched tensor region)
        return torch.cat([torch.zeros(n - n // 10), torch.rand(n // 10, generator=g)])
    if kind == "sorted":  # adversarial orders for a quicksort
        return torch.sort(torch.randint(0, 50, (n,), generator=g).float()).values.flip(0)
    return torch.rand(n, generator=g)  # no ties


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "vectorized"])
@pytest.mark.parametrize("kind", ["levels", "bf16", "zeros", "sorted", "distinct"])
def test_replay_keeps_stock_entries(kind, compiled):
    g = torch.Generator().manual_seed(11)
    sizes = [1, 2, 16, 17, 18, 33, 100, 1000, 4097, 65_537, 300_001]
    for n in sizes:
        magnitude = magnitudes(kind, n, g)
        for k in sorted({min(n, 2), 1, max(1, n // 10), max(1, n // 3), max(1, n - 1), n}):
            assert torch.equal(replayed(magnitude, k, compiled), stock_kept(magnitude, k)), (kind, n, k)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "vectorized"])
def test_replay_on_random_small_inputs(compiled):
    g = torch.Generator().manual_seed(5)
    for _ in range(400):
        n = int(torch.randint(17, 600, (), generator=g))
        levels = int(torch.randint(1, 12, (), generator=g))
        magnitude = torch.randint(0, levels, (n,), generator=g).float()
        k = int(torch.randint(1, n + 1, (), generator=g))
        assert torch.equal(replayed(magnitude, k, compiled), stock_kept(magnitude, k)), (n, levels, k)


def test_the_compiled_replay_is_in_use():
    """numba is a dependency: the trim runs the compiled loop, not the (slower) vectorized fallback."""
    from repro.merge.stock_topk import compiled_kernels

    assert compiled_kernels() is not None
