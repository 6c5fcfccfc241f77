"""One pass over the tensor names of a base model that computes one or many merges (the grid).

For each tensor name, in the order the base stores them: every input's tensor is a view of its
memory-mapped file (read once from disk, rows beyond the base vocabulary cut off), every merge target
computes its tensor with its method's kernel, casts it to the output dtype, adds its share of
||theta_merged - theta_base||^2 (float64 sums; TA/TIES on the CPU compute it chunk by chunk inside their
pass) and hands it to its sink (a streamed shard writer or a state dict); then the input pages are
released. The NaN/Inf check rides along: a merged tensor is finite unless
an input is not (each kernel propagates non-finite inputs, or checks them itself where it would not), so
only a non-finite result triggers an exact scan of that tensor's inputs, which names the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from repro.errors import MergeError
from repro.merge.arithmetic import NonFiniteInput, TrimRuleCache
from repro.merge.elementwise_kernel import CPU_CHUNK, ElementwiseKernel, worker_pool
from repro.merge.group_kernels import GroupKernel, ModelStockKernel, check_group_inputs
from repro.merge.input_ids import model_ids
from repro.merge.stock_topk import use_compiled
from repro.merge.tensor_checks import TensorInfo
from repro.merge.tensor_io import MappedCheckpoint
from repro.method_catalog import ELEMENTWISE, STOCK, MethodFacts, get_method

NORM_CHUNK = 1 << 20
# The chunked kernels (traits kernel=ELEMENTWISE: TA, TIES) and the norm run on one intra-op thread: their
# pieces are small, waking an OpenMP pool per chunk costs more than it saves, and on a loaded machine a
# spinning worker turns microseconds into milliseconds. Instead TA/TIES split each tensor into contiguous
# runs of chunks merged by as many Python threads as torch's setting (`ElementwiseKernel(workers=...)`): no
# spinning, and the results do not depend on the thread count. Whole-tensor kernels (Model Stock, the SVD
# methods) keep the process's setting, as stock mergekit runs them: LAPACK's results depend on it. Methods
# whose traits say `check_finite_first` (an SVD needs finite inputs) have their inputs scanned first.


@dataclass
class MergeTarget:
    """One merge computed by the pass: its inputs (indices into the pass's checkpoint list) and sink.

    `sink(name, tensor)` receives every output tensor (out dtype, CPU)."""

    inputs: tuple[int, ...]
    sink: Any
    kernel: Any = None
    norm_sq: float = 0.0
    extra: dict = field(default_factory=dict)


def tensor_order(index: dict[str, TensorInfo]) -> list[str]:
    """Tensor names in storage order (file, offset): sequential reads of every input."""
    return sorted(index, key=lambda name: (str(index[name].file), index[name].start, name))


def make_kernel(facts: MethodFacts, params: dict, paths: Sequence[Path], device, chunk: int,
                svd_cache=None, pool=None, workers: int = 1, compiled: bool | None = None,
                trim_cache: TrimRuleCache | None = None, input_keys: Sequence[int] = ()):
    """The kernel that merges one target's tensors, as the method's traits say (`traits.kernel`).
    `trim_cache`: the pass's TIES trim rules, for a method that trims (`input_keys`: the target's
    checkpoints, as positions among the pass's models)."""
    if facts.traits.kernel == ELEMENTWISE:
        kernel = ElementwiseKernel(facts.traits, params, len(paths) - 1, device, chunk, workers=workers, pool=pool,
                                   compiled=compiled)
        if facts.traits.trim and trim_cache is not None:
            kernel.trim_cache, kernel.input_keys = trim_cache, tuple(input_keys)
        return kernel
    if facts.traits.kernel == STOCK:
        return ModelStockKernel(params, device)
    kernel = GroupKernel(facts, params, model_ids(paths), device)
    if svd_cache is not None:
        kernel.use_svd_cache(svd_cache, paths)
    if trim_cache is not None:
        kernel.use_trim_cache(trim_cache)
    return kernel


def run_pass(
    *,
    method: str,
    params: dict,
    base: Path,
    base_index: dict[str, TensorInfo],
    models: Sequence[Path],
    model_indexes: Sequence[dict[str, TensorInfo]],
    targets: Sequence[MergeTarget],
    out_dtype: torch.dtype,
    device: torch.device,
    chunk: int | None = None,
    svd_cache=None,
    on_tensor=None,
) -> None:
    """Compute every target, tensor by tensor. Raises MergeError naming checkpoint and tensor.
    `svd_cache` (the caller's) is handed to methods whose traits say they use one. `on_tensor(done, total)`
    is called after each tensor name (progress)."""
    if chunk is None:
        chunk = CPU_CHUNK if device.type == "cpu" else 1 << 62  # whole tensors on an accelerator
    readers = [MappedCheckpoint(base, base_index)] + [
        MappedCheckpoint(path, index) for path, index in zip(models, model_indexes, strict=True)
    ]
    paths = [base, *models]
    facts = get_method(method)
    elementwise = facts.traits.kernel == ELEMENTWISE
    threads = torch.get_num_threads()
    # TA/TIES: as many merging threads as torch's setting, one pool for every target (CPU only)
    workers = threads if elementwise and device.type == "cpu" else 1
    pool = worker_pool(workers) if workers > 1 else None
    names = tensor_order(base_index)
    # TIES' trim and TA's pass: compiled where the whole pass has enough entries to repay loading numba
    entries = sum(math.prod(info.shape) for info in base_index.values()) * sum(len(t.inputs) for t in targets)
    compiled = use_compiled(entries, trim=facts.traits.trim)
    # a checkpoint's trim rule for a tensor is the same in every merge of the pass: found once
    trim_cache = TrimRuleCache() if len(targets) > 1 and (facts.traits.trim or facts.traits.trim_cache) else None
    try:
        for target in targets:
            target.extra["paths"] = paths
            target.kernel = make_kernel(
                facts, params, [base] + [models[i] for i in target.inputs], device, chunk,
                svd_cache, pool, workers, compiled, trim_cache, target.inputs,
            )
        for position, name in enumerate(names):
            if position + 1 < len(names):
                for reader in readers:
                    reader.prefetch(names[position + 1])
            base_tensor = readers[0].tensor(name)
            rows = base_tensor.shape[0] if base_tensor.ndim else None
            inputs = []
            for reader in readers[1:]:
                tensor = reader.tensor(name)
                if rows is not None and tensor.ndim and tensor.shape[0] != rows:
                    tensor = tensor.narrow(0, 0, rows)  # vocabulary truncation (checked beforehand)
                inputs.append(tensor)
            torch.set_num_threads(1 if elementwise else threads)
            for target in targets:
                selected = [inputs[i] for i in target.inputs]
                done = None
                if len(targets) == 1:  # a single merge: pages behind the chunk in flight can go
                    def done(end, name=name):
                        for reader in readers:
                            reader.release_elements(name, end)

                release = None
                if facts.traits.kernel == STOCK:
                    def release(index, target=target, name=name):
                        readers[1 + target.inputs[index]].release(name)

                merged, norm_sq = _merge_one(facts, target, name, base_tensor, selected, out_dtype, done,
                                             release)
                if norm_sq is None:
                    norm_sq = _norm_sq(merged, base_tensor)
                if norm_sq != norm_sq or norm_sq == float("inf"):  # merged is not finite: name the input
                    raise _non_finite_error(name, base_tensor, selected, target)
                target.norm_sq += norm_sq
                target.sink(name, merged)
                del merged
            del base_tensor, inputs
            for reader in readers:
                reader.release(name)
            if on_tensor is not None:
                on_tensor(position + 1, len(names))
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.shutdown(wait=True)
        for reader in readers:
            reader.close()


def _merge_one(facts: MethodFacts, target, name, base_tensor, inputs, out_dtype, done=None,
               release=None) -> tuple[torch.Tensor, float | None]:
    """The merged tensor (out dtype, CPU) and ||merged - base||^2 where the kernel computed it in its pass
    (TA/TIES on the CPU), else None. `done(end)`: elements [0, end) merged (TA/TIES); `release(i)`:
    input i read for now (Model Stock)."""
    if not base_tensor.is_floating_point():
        return base_tensor.clone(), 0.0  # integer buffers: the base's
    norm_sq = None
    try:
        if facts.traits.kernel == ELEMENTWISE:
            if target.kernel.device.type == "cpu":
                merged, norm_sq = target.kernel.merge_with_norm(base_tensor, inputs, out_dtype, done, name)
            else:
                merged = target.kernel.merge(base_tensor, inputs, out_dtype, done, name)
        else:
            if facts.traits.check_finite_first:
                check_group_inputs(base_tensor, inputs)
            if release is not None:
                merged = target.kernel.merge(base_tensor, inputs, name, release)
            else:
                merged = target.kernel.merge(base_tensor, inputs, name)
    except NonFiniteInput:
        raise _non_finite_error(name, base_tensor, inputs, target) from None
    out = merged.to(device="cpu", dtype=out_dtype)
    if out.data_ptr() == base_tensor.data_ptr() or any(out.data_ptr() == t.data_ptr() for t in inputs):
        out = out.clone()  # never hand out a view of a mapped input
    return out, norm_sq


def _norm_sq(merged, base_tensor) -> float:
    """||merged - base||^2: the difference in float32 (the compute dtype; exact for two bf16/fp16
    tensors of like magnitude), squares summed in float64 (NaN/Inf unless merged and base are finite)."""
    if not merged.is_floating_point():
        return 0.0
    flat, flat_base = merged.reshape(-1), base_tensor.reshape(-1)
    total = 0.0
    for start in range(0, flat.numel(), NORM_CHUNK):
        diff = flat[start : start + NORM_CHUNK].to(torch.float32) - flat_base[start : start + NORM_CHUNK].to(
            torch.float32
        )
        total += float(torch.linalg.vector_norm(diff, dtype=torch.float64)) ** 2
    return total


def _non_finite_error(name, base_tensor, inputs, target) -> MergeError:
    """The error naming the input whose tensor `name` holds NaN/Inf (exact scan), or the overflow."""
    paths = target.extra.get("paths")
    candidates = [(paths[0] if paths else "base", base_tensor)] + [
        (paths[1 + i] if paths else f"input {i}", tensor) for i, tensor in zip(target.inputs, inputs, strict=True)
    ]
    for path, tensor in candidates:
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return MergeError(
                    f"tensor {name} contains {bad} NaN/Inf value(s); this checkpoint is broken, "
                    "re-download it or remove it from the merge",
                    path=str(path),
                )
    return MergeError(
        f"merging tensor {name} produced NaN/Inf values from finite inputs (float32 overflow); these "
        "checkpoints cannot be merged with this method",
        field=name,
    )
