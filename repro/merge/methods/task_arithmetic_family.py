"""The mergekit method object of any method whose traits say `kernel=ELEMENTWISE` (Task Arithmetic's family).

The engine merges such a method with its chunked kernel (`repro.merge.elementwise_kernel`), reading the
method's traits: TIES' magnitude trim where `trim`, TIES' sign election where `sign_consensus`. This class
computes the same arithmetic on the whole tensor group, so stock `mergekit-yaml` (through
`repro mergekit-yaml`) runs the method too, and a test can hold the chunked kernel against it: mergekit's
own generalized task arithmetic (`repro.merge.arithmetic.combine_task_vectors`) after the trim
(`repro.merge.arithmetic.trim_by_magnitude`: stock's choice among ties at the cut-off, on any device).

A new elementwise variant needs only its facts (parameters, traits) and one line in its module:

    merge_method = TaskArithmeticFamily(FACTS)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from mergekit.merge_methods.base import GroupMergeMethod, MergeMethodSpec, TensorGroup

from repro.errors import MergeError
from repro.merge.arithmetic import combine_task_vectors, trim_by_magnitude
from repro.merge.mergekit_specs import mergekit_spec
from repro.method_catalog import ELEMENTWISE, MethodFacts


@dataclass(frozen=True)
class TaskArithmeticFamily(GroupMergeMethod):
    """The mergekit method of `facts` (an elementwise method): trim, weight, elect signs, sum, divide,
    scale by lambda, as its traits say."""

    facts: MethodFacts

    def __post_init__(self):
        if self.facts.traits.kernel != ELEMENTWISE:
            raise MergeError(f"merge method {self.facts.name!r}: TaskArithmeticFamily needs traits "
                             f"kernel=elementwise, got {self.facts.traits.kernel!r}", field="traits")

    @cached_property
    def spec(self) -> MergeMethodSpec:
        return mergekit_spec(self.facts)

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        base = group.base.tensor
        entries = group.non_base
        if not entries:
            return base
        deltas = base.new_empty((len(entries), *base.shape))
        for index, entry in enumerate(entries):
            delta = entry.tensor - base
            if self.facts.traits.trim:
                delta = trim_by_magnitude(delta, parameters["density"][entry.id])
            deltas[index] = delta
            del delta
        weights = torch.tensor(
            [parameters["weight"][entry.id] for entry in entries], dtype=deltas.dtype, device=deltas.device
        )
        while deltas.dim() > weights.dim():
            weights.unsqueeze_(-1)
        mixed = combine_task_vectors(
            deltas,
            weights,
            consensus=self.facts.traits.sign_consensus,
            normalize=parameters["normalize"],
            lam=parameters["lambda"],
            int8_mask=bool(parameters.get("int8_mask", False)),
        )
        return (base + mixed).to(base.dtype)
