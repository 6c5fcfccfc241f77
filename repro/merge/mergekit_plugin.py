"""Register our merge methods with mergekit, so its planner, loaders and writers run them.

mergekit keeps one process-wide registry of methods by name (`mergekit.merge_methods.register`);
stock mergekit has no plugin hook, so every entry point that runs a merge (the library engine and
`repro mergekit-yaml`) calls `register_methods()` first. Registration is idempotent.
"""

from __future__ import annotations

from mergekit.merge_methods import MergeMethod, registry

from repro.merge.methods.iso_c import iso_c_merge_method
from repro.merge.methods.subspace_boosting import task_arithmetic_sb_merge_method, ties_sb_merge_method
from repro.merge.methods.tsv_m import tsv_m_merge_method

OUR_METHODS: tuple[MergeMethod, ...] = (
    tsv_m_merge_method,
    iso_c_merge_method,
    task_arithmetic_sb_merge_method,
    ties_sb_merge_method,
)


def register_methods() -> None:
    """Make `tsv_m`, `iso_c`, `task_arithmetic_sb` and `ties_sb` known to mergekit (idempotent)."""
    known = {method.spec.name: method for method in registry.registered_methods()}
    for method in OUR_METHODS:
        existing = known.get(method.spec.name)
        if existing is method:
            continue
        if existing is not None:
            raise RuntimeError(
                f"mergekit already has a different merge method named {method.spec.name!r}; "
                "this mergekit version conflicts with repro's methods"
            )
        registry.register(method)
