"""The merge engine and the methods of the catalog (`repro.method_catalog`); each also runs in stock mergekit.

    from repro.merge import merge_checkpoints, merge_grid, METHODS, resolve_method_params, SvdCache
    result = merge_checkpoints(base, [ckpt1, ckpt2], method, {"lambda": 0.1}, out_dir=out)
    results = merge_grid(base, ckpts, [(0, 1), (0, 2, 3)], method)  # one pass, in memory

Importing this package is cheap; mergekit and torch are imported when a merge runs.
"""

from repro.merge.engine import MergeResult, build_mergekit_config, merge_checkpoints
from repro.merge.grid import merge_grid
from repro.merge.svd_cache import SvdCache
from repro.method_catalog import METHODS, get_method, resolve_method_params

__all__ = [
    "METHODS",
    "MergeResult",
    "SvdCache",
    "build_mergekit_config",
    "get_method",
    "merge_checkpoints",
    "merge_grid",
    "resolve_method_params",
]
