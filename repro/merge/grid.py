"""Grid mode: many subsets of one base's checkpoints merged with one method in a single pass.

The paper's protocol merges 76 subsets per base and method (15 for each n = 2, 4, ..., 10, plus all 12).
`merge_grid` computes all of them in one pass over the tensor names: each checkpoint tensor is read from
disk once and every subset's tensor is computed from the same mapped inputs with the same kernel as a
single merge, so each result is identical to `merge_checkpoints` of that subset alone (tested). Results
are kept in memory (state dicts: for worlds that fit in memory) or streamed to one directory per subset.

    from repro.merge.grid import merge_grid
    results = merge_grid(base, checkpoints, [(0, 1), (2, 5, 7)], "task_arithmetic")
    results[1].state_dict  # the merge of checkpoints 2, 5 and 7
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from repro.atomic_io import atomic_directory
from repro.errors import MergeError
from repro.merge.engine import (
    DEFAULT_SHARD_BYTES,
    MergeResult,
    _check_inputs,
    _run_targets,
    _svd_delta,
    _svd_stats,
    boost_record,
    output_layout,
    prepare_merge,
    write_model_files,
    write_records,
)
from repro.merge.svd_cache import SvdCache
from repro.method_catalog import get_method


def _check_subsets(subsets: Sequence[Sequence[int]], prepared) -> list[tuple[int, ...]]:
    n_models, models = len(prepared.models), prepared.models
    checked, problems = [], []
    for number, subset in enumerate(subsets):
        subset = tuple(int(i) for i in subset)
        bad = [i for i in subset if not 0 <= i < n_models]
        if bad:
            problems.append(f"subset {number} names checkpoint index {bad[0]} (valid: 0..{n_models - 1})")
            continue
        try:
            _check_inputs(prepared.base, [models[i] for i in subset], prepared.method)
        except MergeError as error:
            problems.append(f"subset {number}: {error}")
        checked.append(subset)
    if problems:
        raise MergeError("; ".join(problems), field="subsets")
    return checked


def merge_grid(
    base: str | Path,
    models: Sequence[str | Path],
    subsets: Sequence[Sequence[int]],
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    out_dirs: Sequence[str | Path] | None = None,
    device: str = "cpu",
    vocab_mismatch: str = "truncate",
    out_dtype: str | None = None,
    svd_cache: SvdCache | None = None,
    shard_size_bytes: int = DEFAULT_SHARD_BYTES,
    progress=None,
) -> list[MergeResult]:
    """One MergeResult per subset (indices into `models`, merged in the given order), from one pass.

    `out_dirs=None` keeps every merged model in memory (`result.state_dict`); otherwise one directory
    per subset, each written atomically (on any error during the pass no output is left behind).
    """
    started = time.perf_counter()
    prepared = prepare_merge(
        base, models, method, params, device=device, vocab_mismatch=vocab_mismatch, out_dtype=out_dtype
    )
    checked = _check_subsets(subsets, prepared)
    if out_dirs is not None and len(out_dirs) != len(checked):
        raise MergeError(f"give one output directory per subset ({len(checked)}), got {len(out_dirs)}", field="out_dirs")
    if svd_cache is None and get_method(prepared.method).traits.svd_cache:
        svd_cache = _pass_local_cache(prepared)
    timings = {"checks_s": time.perf_counter() - started, "grid_merges": len(checked)}
    # torch, numpy: deferred so that importing this module does not load them
    from repro.merge.streaming import MergeTarget

    states: list[dict] = [{} for _ in checked] if out_dirs is None else []
    with contextlib.ExitStack() as stack:
        if out_dirs is None:
            targets = [MergeTarget(inputs=subset, sink=state.__setitem__) for subset, state in zip(checked, states, strict=True)]
        else:
            # torch: deferred so that importing this module does not load it
            from repro.merge.tensor_io import ShardWriter

            layout = output_layout(prepared)
            tmps = [stack.enter_context(atomic_directory(Path(d))) for d in out_dirs]
            writers = [ShardWriter(tmp, layout, shard_size_bytes) for tmp in tmps]
            for writer in writers:
                stack.callback(writer.abort)
            targets = [MergeTarget(inputs=subset, sink=w.write) for subset, w in zip(checked, writers, strict=True)]
        before = _svd_stats(svd_cache)
        merge_started = time.perf_counter()
        _run_targets(prepared, targets, svd_cache, progress)
        timings["merge_s"] = time.perf_counter() - merge_started
        cache_stats = _svd_delta(svd_cache, before)
        boosting = [boost_record(target) for target in targets]
        if out_dirs is not None:
            for tmp, writer, target, boosted in zip(tmps, writers, targets, boosting, strict=True):
                writer.close()
                write_model_files(tmp, prepared)
                write_records(
                    tmp, prepared, [prepared.models[i] for i in target.inputs], {
                        "norm": target.norm_sq**0.5, "cache_stats": cache_stats, "subspace_boosting": boosted,
                    }, _truncations(prepared, target.inputs), timings, time.perf_counter() - started,
                )
    elapsed = time.perf_counter() - started
    return [
        MergeResult(
            out_dir=None if out_dirs is None else Path(out_dirs[number]),
            method=prepared.method,
            params=prepared.params,
            task_vector_l2=target.norm_sq**0.5,
            vocab_truncations=[t.as_dict() for t in _truncations(prepared, target.inputs)],
            elapsed_s=elapsed,
            out_dtype=prepared.out_dtype,
            timings=dict(timings),
            svd_cache_stats=cache_stats,
            state_dict=states[number] if out_dirs is None else None,
            subspace_boosting=boosting[number],
        )
        for number, target in enumerate(targets)
    ]


def _truncations(prepared, inputs: Sequence[int]) -> list:
    chosen = {str(prepared.models[i]) for i in inputs}
    return [t for t in prepared.truncations if t.checkpoint in chosen]


def _pass_local_cache(prepared) -> SvdCache:
    """An SVD cache for this call only: checkpoints are identified by path, size and mtime (no hashing)."""
    cache = SvdCache()
    for path in (prepared.base, *prepared.models):
        stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.glob("*.safetensors"))]
        cache.register_checkpoint(path, f"{path}|{stamp}")
    return cache
