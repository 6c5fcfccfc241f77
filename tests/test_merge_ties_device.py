"""TIES' trim keeps the same entries on every device: stock mergekit's CPU choice among ties at the cut-off."""

from __future__ import annotations

import pytest
import torch
from mergekit.sparsify import SparsificationMethod, sparsify

from repro.merge.arithmetic import kept_ties, trim_by_magnitude, unambiguous_ties
from repro.merge.stock_topk import stock_kept_ties


def tie_heavy(seed: int, size: int, levels: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (size,), generator=generator).to(torch.float32) / levels


@pytest.mark.parametrize("seed", range(6))
def test_unambiguous_cut_off_agrees_with_stock_and_ties_are_deferred(seed):
    distinct = torch.randperm(5000, generator=torch.Generator().manual_seed(seed)).to(torch.float32)
    threshold, tied = unambiguous_ties(distinct, 1234)
    stock_threshold, stock_tied = stock_kept_ties(distinct, 1234)
    assert tied is not None and threshold == stock_threshold
    kept = (distinct > threshold).sum() + tied.numel()
    assert int(kept) == 1234 and torch.equal(tied.sort().values, stock_tied.sort().values)
    # 17 levels over 5000 entries: the cut-off falls inside a block of equal values
    _, deferred = unambiguous_ties(tie_heavy(seed, 5000, 17), 1234)
    assert deferred is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("density", [0.1, 0.2, 0.5, 0.9])
def test_trim_by_magnitude_is_mergekits_magnitude_sparsify_on_the_cpu(dtype, density):
    delta = (tie_heavy(int(density * 10), 4096, 9) - 0.5).to(dtype).reshape(64, 64)
    ours = trim_by_magnitude(delta, density)
    stock = sparsify(delta, density=density, method=SparsificationMethod.magnitude, rescale_norm=None)
    assert ours.dtype == stock.dtype and torch.equal(ours, stock)
    assert torch.equal(torch.signbit(ours), torch.signbit(stock))  # d * 0 keeps the sign of zero


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU half is tested above)")
def test_cuda_keeps_the_entries_stock_keeps_on_the_cpu():
    for seed in range(4):
        magnitude = tie_heavy(seed, 200_000, 31)
        threshold, tied = kept_ties(magnitude.cuda(), 50_000)
        stock_threshold, stock_tied = stock_kept_ties(magnitude, 50_000)
        assert threshold == stock_threshold and torch.equal(tied.cpu().sort().values, stock_tied.sort().values)
        delta = magnitude.reshape(400, 500) - 0.5
        assert torch.equal(trim_by_magnitude(delta.cuda(), 0.2).cpu(), trim_by_magnitude(delta, 0.2))
