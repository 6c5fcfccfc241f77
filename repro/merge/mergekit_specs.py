"""The merge layer's view of the method catalog: mergekit specs and method objects built from the facts.

A method's facts (name, parameters, study defaults, ranges, per-model scope, minimum inputs, citation)
are stated once, in `repro.method_catalog` (the facts layer). This module turns them into what mergekit
needs: `mergekit_spec(facts)` is the method's mergekit `MergeMethodSpec` (ParameterSpecs +
InputContract), and `facts_merge_method(facts, function)` wraps a per-tensor-group function into a
mergekit merge method with that spec. mergekit is imported only when those are called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from repro.method_catalog import MethodFacts, get_method

if TYPE_CHECKING:
    from mergekit.merge_methods.base import MergeMethodSpec


def mergekit_spec(facts: MethodFacts | str) -> MergeMethodSpec:
    """The mergekit spec of a method, from its facts (every method requires a base)."""
    # mergekit: deferred so that importing this module does not load it
    from mergekit.merge_methods.base import (
        BasePolicy,
        InputContract,
        MergeMethodSpec,
        ParameterScope,
        ParameterSpec,
    )

    facts = get_method(facts) if isinstance(facts, str) else facts
    parameters = tuple(
        ParameterSpec(p.name, p.type, ParameterScope.NON_BASE if p.per_model else ParameterScope.SHARED,
                      default=p.default, description=p.help or None)
        for p in facts.parameters
    )
    return MergeMethodSpec(
        name=facts.mergekit_name,
        pretty_name=facts.title,
        parameters=parameters,
        contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=facts.min_models),
    )


def facts_merge_method(facts: MethodFacts | str, function: Callable):
    """A mergekit merge method running `function(group, **parameters) -> tensor` per tensor group, with the
    spec of `facts` (a `MethodFacts` or a catalog name)."""
    # mergekit: deferred so that importing this module does not load it
    from mergekit.merge_methods.base import FunctionalGroupMergeMethod

    return FunctionalGroupMergeMethod(mergekit_spec(facts), function)
