"""Register the kit's merge methods (and installed plugins') with mergekit, so its planner, loaders and
writers run them.

mergekit keeps one process-wide registry of methods by name (`mergekit.merge_methods.register`);
stock mergekit has no plugin hook, so every entry point that runs a merge (the library engine and
`repro mergekit-yaml`) calls `register_methods()` first. Which methods are ours comes from the facts
(`repro.method_catalog`: a method with an `implementation` is ours or a plugin's). Registration is
idempotent.
"""

from __future__ import annotations

import importlib

from mergekit.merge_methods import MergeMethod, registry

from repro.errors import MergeError
from repro.method_catalog import get_method, method_names


def implementation(name: str) -> MergeMethod:
    """The mergekit method object implementing catalog method `name` (imports its module)."""
    facts = get_method(name)
    module_name, _, attribute = facts.implementation.partition(":")
    try:
        method = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise MergeError(f"cannot load the implementation {facts.implementation!r} of merge method {name!r}: "
                         f"{error}", field="method") from error
    if not isinstance(method, MergeMethod) or method.spec.name != facts.mergekit_name:
        raise MergeError(f"{facts.implementation} must be a mergekit MergeMethod named {facts.mergekit_name!r}",
                         field="method")
    return method


def our_methods() -> tuple[MergeMethod, ...]:
    """Every method object the kit (and its plugins) implement, in catalog order."""
    return tuple(implementation(name) for name in method_names() if get_method(name).ours)


def register_methods() -> None:
    """Make our methods (tsv_m, iso_c, task_arithmetic_sb, ties_sb, plugins') known to mergekit."""
    known = {method.spec.name: method for method in registry.registered_methods()}
    for method in our_methods():
        existing = known.get(method.spec.name)
        if existing is method:
            continue
        if existing is not None:
            raise MergeError(
                f"mergekit already has a different merge method named {method.spec.name!r}; "
                "this mergekit version conflicts with repro's methods", field="method"
            )
        registry.register(method)
