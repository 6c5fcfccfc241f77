"""Kernels that merge a whole tensor at once: Model Stock's (`kernel=STOCK`) and a mergekit method object
on the tensor group (`kernel=GROUP`: TSV-M, Iso-C, the Subspace Boosting methods, plugins').

Model Stock runs mergekit's arithmetic step for step without its repeated norms and copies, holding a
bounded number of float32 task vectors (`repro.merge.model_stock_kernel`; bit-identical, tested). A group
method calls the mergekit method object (ours, registered by `repro.merge.mergekit_plugin`), so its
results are those of `repro mergekit-yaml` by construction. What a method object offers beyond mergekit's
interface (an SVD cache, a boost observer) is read from its traits, never guessed from its attributes.
Every kernel returns the merged tensor in float32 on the compute device.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch

from repro.merge.arithmetic import NonFiniteInput
from repro.merge.input_ids import content_ids
from repro.merge.methods.spectral import BoostCount
from repro.merge.model_stock_kernel import model_stock_tensor
from repro.method_catalog import MethodFacts


class ModelStockKernel:
    """Model Stock over one tensor: mergekit's arithmetic without its repeated passes
    (`repro.merge.model_stock_kernel`)."""

    def __init__(self, params: Mapping[str, Any], device: torch.device):
        self.filter_wise = bool(params.get("filter_wise", False))
        self.device = device

    def merge(self, base: torch.Tensor, inputs: Sequence[torch.Tensor], name: str,
              release: Callable[[int], None] | None = None) -> torch.Tensor:
        """`release(i)`: input i's pages may leave the process for now (it is read again if needed)."""
        del name
        return model_stock_tensor(base, inputs, filter_wise=self.filter_wise, device=self.device, release=release)


class GroupKernel:
    """A mergekit method object (stock Model Stock, or one of ours) on the whole tensor group."""

    def __init__(self, facts: MethodFacts, params: Mapping[str, Any], ids: Sequence[Hashable],
                 device: torch.device):
        from mergekit import merge_methods  # mergekit is imported when a group method runs

        from repro.merge.mergekit_plugin import register_methods  # imports mergekit and the methods' modules

        register_methods()
        self.facts = facts
        self.method = merge_methods.get(facts.mergekit_name)
        self.boost_count = None  # Subspace Boosting: the merge's `BoostCount` (trait `records_boosts`)
        if facts.traits.records_boosts:
            self.boost_count = BoostCount()
            self.method = self.method.with_observer(self.boost_count)
        self.parameters = dict(params)  # scalars: mergekit broadcasts per-model values itself
        self.ids = list(ids)
        self.device = device

    def use_svd_cache(self, svd_cache, paths: Sequence[Any]) -> None:
        """Hand the caller's SVD cache to a method whose traits say it uses one (`with_svd_cache`), and id
        the inputs by content (`ContentKey`) so the method keys its cache without reading paths."""
        if self.facts.traits.svd_cache:
            self.method = self.method.with_svd_cache(svd_cache)
            self.ids = content_ids(paths, svd_cache)

    def use_trim_cache(self, cache) -> None:
        """Hand the pass's TrimRuleCache to a method whose traits say it takes one (`with_trim_cache`)."""
        if self.facts.traits.trim_cache:
            self.method = self.method.with_trim_cache(cache)

    def merge(self, base: torch.Tensor, inputs: Sequence[torch.Tensor], name: str) -> torch.Tensor:
        from mergekit.merge_methods.base import TensorGroup  # with mergekit, as above

        tensors = [base.to(self.device)] + [t.to(self.device) for t in inputs]
        group = TensorGroup.from_tensors(tensors, ids=self.ids, base_index=0, name=name)
        (merged,) = self.method((group,), parameters=self.parameters, dtype=torch.float32)
        return merged


def check_group_inputs(base: torch.Tensor, inputs: Sequence[torch.Tensor]) -> None:
    """Raise NonFiniteInput for the first input whose delta is not finite (exact, float64 sums)."""
    base64 = base.to(torch.float64)
    for index, tensor in enumerate(inputs):
        if not bool(torch.isfinite((tensor.to(torch.float64) - base64).sum())):
            raise NonFiniteInput(index)

