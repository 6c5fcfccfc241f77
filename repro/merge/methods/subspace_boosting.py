"""Subspace Boosting (Skorobogat et al., 2025) on top of Task Arithmetic and TIES, as mergekit methods
`task_arithmetic_sb` and `ties_sb`.

The computation is mergekit's own generalized task arithmetic (mergekit's magnitude sparsify, with
stock's CPU choice among ties on every device: `arithmetic.trim_by_magnitude`, then
`repro.merge.arithmetic.combine_task_vectors`: mergekit's weighting, sign election and divisor), with one
extra step between the sum and the normalization: for the attention / MLP projection weight matrices (q, k, v, o, gate, up, down) the
summed update is boosted, i.e. its singular values below the beta-energy cutoff are raised to the
cutoff value (see `spectral.boost_spectrum`). So TA+SB boosts sum_i w_i delta_i, and TIES+SB boosts
the sum of the agreeing trimmed entries *before* dividing by the agreeing count; lambda scales last.
Other tensors are merged exactly as the base method merges them.

These cannot use `merge_method(...)` from a plain function because one of their parameters is named
`lambda` (a Python keyword, and the name mergekit users know); they subclass mergekit's
`GroupMergeMethod` the way mergekit's own task-arithmetic family does.

A numerically-zero singular value raised by the boost brings in singular vectors that the SVD picks
arbitrarily (another library, device or the transposed matrix picks others). `keep_null` (off in the
paper's configuration: the authors raised them) keeps those at zero; either way the merge engine counts
the matrices where it happened (`with_observer`, `BoostCount`) and records the count with the merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch
from mergekit.merge_methods.base import GroupMergeMethod, MergeMethodSpec, TensorGroup

from repro.merge.arithmetic import TrimRuleCache, combine_task_vectors, trim_by_magnitude
from repro.merge.mergekit_specs import mergekit_spec
from repro.merge.methods.spectral import BoostOutcome, boost_spectrum_outcome, is_boosted_matrix


@dataclass(frozen=True)
class BoostedTaskArithmetic(GroupMergeMethod):
    """Task Arithmetic (ties=False) or TIES (ties=True) with Subspace Boosting of the summed update."""

    method_name: str  # its facts (parameters, defaults, contract) are in `repro.method_catalog`
    ties: bool
    # called with (tensor name, BoostOutcome) for every boosted matrix; the merge engine's count
    observer: Callable[[str, BoostOutcome], None] | None = field(default=None, compare=False)
    # TIES: the merge pass's trim rules (repro.merge.arithmetic.TrimRuleCache), shared by its merges
    trim_cache: TrimRuleCache | None = field(default=None, compare=False)

    def with_observer(self, observer: Callable[[str, BoostOutcome], None]) -> BoostedTaskArithmetic:
        """A copy that reports each projection matrix's boost outcome to `observer`."""
        return replace(self, observer=observer)

    def with_trim_cache(self, cache: TrimRuleCache) -> BoostedTaskArithmetic:
        """A copy that takes TIES' trim rules from (and adds them to) the merge pass's `cache`."""
        return replace(self, trim_cache=cache)

    @cached_property
    def spec(self) -> MergeMethodSpec:
        return mergekit_spec(self.method_name)

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        base = group.base.tensor
        entries = group.non_base
        if not entries:
            return base
        deltas = base.new_empty((len(entries), *base.shape))
        for index, entry in enumerate(entries):
            delta = entry.tensor - base
            if self.ties:
                # mergekit's magnitude sparsify as stock computes it on the CPU, on any device
                density = parameters["density"][entry.id]
                rule = None
                if self.trim_cache is not None:
                    def rule(compute, entry=entry, density=density):
                        return self.trim_cache.rule(group.metadata.name, entry.id, density, compute)
                delta = trim_by_magnitude(delta, density, rule)
            deltas[index] = delta
            del delta

        weights = torch.tensor(
            [parameters["weight"][entry.id] for entry in entries], dtype=deltas.dtype, device=deltas.device
        )
        while deltas.dim() > weights.dim():
            weights.unsqueeze_(-1)

        def boost(mixed: torch.Tensor) -> torch.Tensor:
            if not is_boosted_matrix(group.metadata.name, base):
                return mixed
            boosted, outcome = boost_spectrum_outcome(
                mixed.to(torch.float32), parameters["beta"], group.metadata.name,
                keep_null=bool(parameters.get("keep_null", False)),
            )
            if self.observer is not None:
                self.observer(group.metadata.name, outcome)
            return boosted.to(mixed.dtype)

        mixed_delta = combine_task_vectors(
            deltas,
            weights,
            consensus=self.ties,
            normalize=parameters["normalize"],
            lam=parameters["lambda"],
            int8_mask=bool(parameters.get("int8_mask", False)),
            transform=boost,
        )
        return (base + mixed_delta).to(base.dtype)


task_arithmetic_sb_merge_method = BoostedTaskArithmetic(method_name="task_arithmetic_sb", ties=False)
ties_sb_merge_method = BoostedTaskArithmetic(method_name="ties_sb", ties=True)
