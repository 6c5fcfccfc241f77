"""The merge engine and the seven merge methods of the study (each also runs inside stock mergekit).

    from repro.merge import merge_checkpoints, merge_grid, METHODS, resolve_method_params, SvdCache
    result = merge_checkpoints(base, [ckpt1, ckpt2], "ties", {"lambda": 0.1}, out_dir=out)
    results = merge_grid(base, ckpts, [(0, 1), (0, 2, 3)], "task_arithmetic")  # one pass, in memory

Importing this package is cheap; mergekit and torch are imported when a merge runs.
"""

from repro.merge.engine import MergeResult, build_mergekit_config, merge_checkpoints, task_vector_l2
from repro.merge.grid import merge_grid
from repro.merge.registry import METHODS, MethodSpec, get_method, resolve_method_params
from repro.merge.svd_cache import SvdCache

__all__ = [
    "METHODS",
    "MergeResult",
    "MethodSpec",
    "SvdCache",
    "build_mergekit_config",
    "get_method",
    "merge_checkpoints",
    "merge_grid",
    "resolve_method_params",
    "task_vector_l2",
]
