"""Per-tensor merge kernels of the streaming engine: each method's defining function, one tensor at a time.

- Task Arithmetic and TIES are elementwise once TIES' per-checkpoint trim threshold is known, so they run
  over the flattened tensor in chunks of `chunk` elements (bounded memory, cache-sized) with mergekit's
  own arithmetic: `combine_task_vectors` is mergekit 0.1.5's `GeneralizedTaskArithmeticMerge.merge_group`
  after sparsification, step by step (and mergekit's `get_mask`). Chunks are multiples of 64 elements, so
  torch's reductions over the stacked inputs give the same bits as on the whole tensor (tested). On the
  CPU, contiguous runs of chunks are merged by as many threads as torch's setting, and the task vector's
  squared norm is summed per chunk in the same pass (`merge_with_norm`); neither changes a bit. Task
  Arithmetic over bf16 checkpoints runs as one compiled pass per run of whole chunks where the merge is
  large enough (`repro.merge.compiled_task_arithmetic`: the same additions in the same order, so the same
  stored bits; about 4x less CPU than torch's ops, tested against them).
- TIES' trim keeps the top-k entries of |delta| (k = max(1, int(density * numel)), mergekit's k): on the
  CPU exactly the entries stock mergekit keeps, ties at the cut-off included (its argsort is libstdc++'s
  unstable introsort; `repro.merge.stock_topk` replays the partitions that decide the boundary: O(n), not
  a full sort, compiled by numba, as is the trim's one pass per chunk). On an accelerator the threshold is
  selected there (`topk_threshold`); only where more entries equal it than are kept are the magnitudes
  copied to the CPU for stock's rule, so CUDA and CPU keep the same entries (`kept_ties`). TIES+SB trims
  with the same rule (`trim_by_magnitude`).
- Model Stock runs mergekit's arithmetic step for step without its repeated norms and copies, holding a
  bounded number of float32 task vectors (`repro.merge.model_stock_kernel`; bit-identical, tested). Our
  subspace methods (TSV-M, Iso-C, TA+SB, TIES+SB) call the mergekit method object (ours, registered by
  `repro.merge.mergekit_plugin`) on the whole tensor group, so their results are those of
  `repro mergekit-yaml` by construction.

Every kernel returns the merged tensor in float32 on the compute device; the engine casts, checks and
stores it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from repro.errors import MergeError

CPU_CHUNK = 1 << 16  # elements per chunk on the CPU (a multiple of 64, see above)
SELECT_DIRECTLY = 1 << 17  # TIES: below this many entries, select among all of them (no sampling)
ELEMENTWISE_METHODS = ("task_arithmetic", "ties")


def combine_task_vectors(
    deltas: torch.Tensor,
    weights: torch.Tensor,
    *,
    consensus: bool,
    normalize: bool,
    lam: float,
    int8_mask: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """mergekit's generalized task arithmetic on (sparsified) deltas [n, ...]: weight, (sign consensus),
    sum, divide by the (agreeing) weight, scale by lambda. `weights` is [n, 1, ...]; `deltas` is changed
    in place. `transform` (Subspace Boosting) acts on the summed update before the division."""
    from mergekit.merge_methods.generalized_task_arithmetic import ConsensusMethod, get_mask

    if not bool((weights == 1).all()):  # x * 1 == x exactly: skipping the pass changes no bit
        deltas.mul_(weights)
    if consensus:
        mask = get_mask(deltas, method=ConsensusMethod.sum, mask_dtype=torch.int8 if int8_mask else deltas.dtype)
        mixed = (deltas * mask).sum(dim=0)
        divisor = (weights * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.sum(dim=0)
        divisor = weights_sum(weights)
    if transform is not None:
        mixed = transform(mixed)
    if normalize:
        mixed /= divisor
    if lam != 1:
        mixed *= lam
    return mixed


def weights_sum(weights: torch.Tensor) -> torch.Tensor:
    """mergekit's divisor without sign consensus: the weights' sum over the inputs, 1 where it is ~0."""
    divisor = weights.sum(dim=0)
    divisor[divisor.abs() < 1e-8] = 1
    return divisor


def topk_threshold(magnitude: torch.Tensor, k: int) -> tuple[float, int]:
    """(t, cut) such that the k largest entries of the flat, finite `magnitude` are those > t plus those
    == t with flat index < cut (lowest indices first). Selection on the candidates above a bound taken
    from a strided sample; exact whatever the sample."""
    flat = magnitude.reshape(-1)
    total = flat.numel()
    if total <= SELECT_DIRECTLY:
        candidates = None
    else:
        sample = flat[:: total // 16384]
        position = int((1.0 - 1.25 * k / total) * sample.numel())  # a bound a little below the cut-off
        bound = torch.kthvalue(sample, max(1, min(sample.numel(), position + 1))).values
        candidates = torch.nonzero(flat >= bound).reshape(-1)
        if candidates.numel() < k:  # the sample overestimated the cut-off: select among all entries
            candidates = None
    if candidates is None:
        candidates = torch.arange(total, device=flat.device)
    values = flat[candidates]
    threshold = torch.kthvalue(values, values.numel() - k + 1).values
    above = int((values > threshold).sum())
    ties = candidates[values == threshold]
    cut = int(ties[k - above - 1]) + 1
    return float(threshold), cut


@dataclass
class TrimRule:
    """TIES trim of one checkpoint's delta of one tensor: keep |d| > threshold, and the entries == threshold
    whose flat indices are in `tied` (sorted)."""

    threshold: float
    tied: torch.Tensor
    compiled: bool = False  # apply it with the compiled pass (`stock_topk.use_compiled` of the tensor)

    def apply(self, delta: torch.Tensor, start: int) -> None:
        """Zero, in place, the entries of the flat chunk `delta` (flat offset `start`) that are trimmed."""
        if self.compiled and delta.device.type == "cpu" and delta.dtype == torch.float32 and delta.is_contiguous():
            from repro.merge.stock_topk import compiled_kernels

            kernels = compiled_kernels()
            if kernels is not None:  # the same products in one compiled pass
                kernels.trim(delta.numpy(), np.float32(self.threshold), self.tied.to("cpu", torch.int64).numpy(), start)
                return
        keep = delta.abs() > self.threshold
        if self.tied.numel():
            bounds = torch.tensor([start, start + delta.numel()], dtype=self.tied.dtype, device=self.tied.device)
            lo, hi = torch.searchsorted(self.tied, bounds).tolist()
            if hi > lo:
                keep[(self.tied[lo:hi] - start).to(keep.device)] = True
        delta.mul_(keep)  # as mergekit: d * 0 for trimmed entries (keeps the sign of zero)


def kept_ties(magnitude: torch.Tensor, k: int, compiled: bool | None = None) -> tuple[float, torch.Tensor]:
    """(t, tied): the top k of the flat, finite `magnitude` are the entries > t and those == t at the flat
    indices `tied`. Exactly stock mergekit's choice on the CPU (`repro.merge.stock_topk`), whatever the
    device: an accelerator selects the threshold itself (`topk_threshold`), and only where more entries
    equal it than are kept (ties at the cut-off, common in bf16) are the magnitudes copied to the CPU for
    stock's rule. So a merge on CUDA keeps the same entries as on the CPU (`make gpu-check`). `compiled`:
    as `stock_kept_ties` (the same answer either way)."""
    from repro.merge.stock_topk import stock_kept_ties

    if magnitude.device.type == "cpu":
        return stock_kept_ties(magnitude, k, compiled=compiled)
    threshold, tied = unambiguous_ties(magnitude, k)
    if tied is None:
        threshold, tied = stock_kept_ties(magnitude.cpu(), k, compiled=compiled)
        tied = tied.to(magnitude.device)
    return threshold, tied


def unambiguous_ties(magnitude: torch.Tensor, k: int) -> tuple[float, torch.Tensor | None]:
    """(t, tied) as `kept_ties` where every entry equal to the k-th largest value is kept (then any rule
    agrees); (t, None) where some of them must be dropped and the choice among them needs stock's rule."""
    threshold, _ = topk_threshold(magnitude, k)
    flat = magnitude.reshape(-1)
    equal = torch.nonzero(flat == threshold).reshape(-1)
    needed = k - int((flat > threshold).sum())
    return threshold, (equal if equal.numel() == needed else None)


def trim_by_magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """mergekit's `sparsify(..., method=magnitude, rescale_norm=None)` as stock computes it on the CPU
    (its top-k of |delta| in float32, its choice among ties), on any device: `delta * mask`."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    flat = delta.reshape(-1).to(torch.float32, copy=True)
    magnitude = flat.abs()
    rule = TrimRule(*kept_ties(magnitude, max(1, int(density * flat.numel()))))
    del magnitude
    rule.apply(flat, 0)
    return flat.to(delta.dtype).reshape(delta.shape)


def ties_trim_rules(base: torch.Tensor, inputs: Sequence[torch.Tensor], density: Sequence[float], pool=None,
                    compiled: bool | None = None) -> list:
    """Per input: None (density >= 1: nothing trimmed) or its TrimRule. Raises NonFiniteInput for the
    first input (in order) whose delta is not finite (a trimmed NaN would otherwise vanish from the merge).
    `pool` (a thread pool) computes the inputs' rules concurrently: each is independent of the others.
    `compiled`: whether to use the compiled kernels (None: by this tensor's size, `use_compiled`)."""
    from repro.merge.stock_topk import use_compiled

    base32 = base.to(torch.float32)

    def rule(index: int):
        keep = density[index]
        if keep >= 1:
            return None
        magnitude = (inputs[index].to(torch.float32) - base32).abs_().reshape(-1)
        if magnitude.numel() and not bool(torch.isfinite(magnitude.max())):  # max propagates NaN and +inf
            raise NonFiniteInput(index)
        fast = use_compiled(magnitude.numel()) if compiled is None else compiled
        k = max(1, int(keep * magnitude.numel()))
        return TrimRule(*kept_ties(magnitude, k, fast), compiled=fast)

    if len(density) != len(inputs):
        raise ValueError("one density per input")
    indices = range(len(inputs))
    return list(pool.map(rule, indices)) if pool is not None and len(inputs) > 1 else [rule(i) for i in indices]


class NonFiniteInput(Exception):
    """Internal: input `index` (0-based among the non-base inputs) of the current tensor is not finite."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


def worker_pool(workers: int):
    """The threads that merge runs of chunks (and TIES' trim rules) concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="repro-merge")


class ElementwiseKernel:
    """Task Arithmetic / TIES over one tensor, chunk by chunk, for a fixed list of inputs.

    With `workers` > 1 (CPU), contiguous runs of chunks are merged by that many threads at once (torch
    releases the GIL in its kernels), and TIES' per-input trim rules are found concurrently. Every chunk
    is computed exactly as by one thread, into its own slice of the output: the bits do not depend on
    `workers`. `pool` (a ThreadPoolExecutor with `workers` threads) may be shared by many kernels (the
    grid); without one the kernel makes its own: then call `close()` when done."""

    def __init__(self, method: str, params: Mapping[str, Any], n_inputs: int, device: torch.device, chunk: int,
                 workers: int = 1, pool=None, compiled: bool | None = None):
        self.ties = method == "ties"
        self.compiled = compiled  # TIES: trim with the compiled kernels (None: decided per tensor by size)
        self.params = params
        self.device = device
        self.chunk = chunk
        self.workers = max(1, int(workers)) if device.type == "cpu" else 1
        self.weights = torch.full((n_inputs, 1), float(params["weight"]), dtype=torch.float32, device=device)
        self._deltas = (
            [torch.empty((n_inputs, chunk), dtype=torch.float32, device=device) for _ in range(self.workers)]
            if chunk <= CPU_CHUNK else None
        )
        self._pool, self._own_pool = (pool if self.workers > 1 else None), False
        if self.workers > 1 and self._pool is None:
            self._pool, self._own_pool = worker_pool(self.workers), True

    def close(self) -> None:
        if self._own_pool:
            self._pool.shutdown(wait=True)
        self._pool, self._own_pool = None, False

    def merge(
        self,
        base: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        out_dtype: torch.dtype = torch.float32,
        done: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """The merged tensor (`out_dtype`, on the device) from base and inputs (any dtype, any device);
        each chunk is cast as mergekit casts its result (float32, then `out_dtype`). `done(end)` is
        called after the elements [0, end) are merged (the inputs' pages there may be released)."""
        return self.merge_with_norm(base, inputs, out_dtype, done)[0]

    def merge_with_norm(
        self,
        base: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        out_dtype: torch.dtype = torch.float32,
        done: Callable[[int], None] | None = None,
    ) -> tuple[torch.Tensor, float]:
        """`merge`, and ||merged - base||^2 computed in the same pass, chunk by chunk while the chunk is
        in cache: the difference of the stored (cast) values in float32, squares summed in float64 per
        chunk, the chunks' sums added in chunk order (the same bits whatever `workers`). NaN/Inf if the
        merged tensor is not finite."""
        rules = None
        if self.ties:
            rules = ties_trim_rules(
                base.to(self.device), [t.to(self.device) for t in inputs], [self.params["density"]] * len(inputs),
                pool=self._pool, compiled=self.compiled,
            )
        flat_base = base.reshape(-1)
        flats = [t.reshape(-1) for t in inputs]
        total = flat_base.numel()
        out = torch.empty(total, dtype=out_dtype, device=self.device)
        chunks = -(-total // self.chunk)
        norms = np.zeros(chunks)
        merge_span = self._compiled_task_arithmetic(flat_base, flats, out) or self._merge_span
        spans = min(self.workers, chunks)
        if spans <= 1:
            merge_span(flat_base, flats, rules, out, norms, 0, total, done)
            return out.view(base.shape), sum(norms.tolist())
        per_span = -(-chunks // spans) * self.chunk  # contiguous runs of whole chunks
        futures = [
            self._pool.submit(merge_span, flat_base, flats, rules, out, norms, start,
                              min(total, start + per_span), done if start == 0 else None, worker)
            for worker, start in enumerate(range(0, total, per_span))
        ]
        for future in futures:
            future.result()
        return out.view(base.shape), sum(norms.tolist())

    def _compiled_task_arithmetic(self, flat_base, flats, out) -> Callable | None:
        """Task Arithmetic's span merger in one compiled pass (`repro.merge.compiled_task_arithmetic`: the
        same stored bits) where it applies: on the CPU, a bf16 base and 1 to 16 bf16 contiguous inputs, a
        bf16 or float32 output, numba installed, and `compiled` (None: `use_compiled` of this tensor's
        entries, inputs included). Else None (the torch path). Whole chunks only: torch's sum over the
        inputs adds them in order for whole vectors of columns, so a tensor's partial last chunk (its
        last columns summed otherwise) goes through the torch path."""
        from repro.merge.stock_topk import use_compiled

        if self.ties or self.device.type != "cpu" or out.dtype not in (torch.bfloat16, torch.float32):
            return None
        if not 1 <= len(flats) <= 16:  # torch sums up to 17 rows in order, more in a cascade
            return None
        tensors = [flat_base, *flats]
        if any(t.dtype != torch.bfloat16 or t.device.type != "cpu" or not t.is_contiguous() for t in tensors):
            return None
        entries = flat_base.numel() * len(flats)
        if not (self.compiled if self.compiled is not None else use_compiled(entries, "task_arithmetic")):
            return None
        try:
            from repro.merge.compiled_task_arithmetic import task_arithmetic_bf16
        except ImportError:  # numba is a dependency; without it the torch path gives the same bits
            return None
        weight = float(self.weights[0, 0])
        divisor = float(weights_sum(self.weights)) if bool(self.params["normalize"]) else 1.0
        lam = float(self.params["lambda"])
        # read through `addresses`: the caller (merge_with_norm) holds the inputs until every span is done
        base16 = flat_base.view(torch.uint16).numpy()
        addresses = np.array([t.data_ptr() for t in flats], dtype=np.int64)
        to_bf16 = out.dtype == torch.bfloat16
        out_array = out.view(torch.uint16).numpy() if to_bf16 else out.numpy()
        step = self.chunk * 16  # `done` is called between steps (pages behind can be released)
        whole = flat_base.numel() - flat_base.numel() % self.chunk  # the compiled pass takes whole chunks

        def merge_span(flat_base, flats, rules, out, norms, first, last, done, worker=0):
            for start in range(first, min(last, whole), step):
                end = min(last, whole, start + step)
                task_arithmetic_bf16(base16, addresses, out_array, to_bf16, norms, start, end, self.chunk, weight,
                                     divisor, lam)
                if done is not None:
                    done(end)
            if last > whole:  # a partial last chunk: torch sums its last columns in another order
                self._merge_span(flat_base, flats, rules, out, norms, max(first, whole), last, done, worker)

        return merge_span

    def _merge_span(self, flat_base, flats, rules, out, norms, first: int, last: int, done, worker: int = 0) -> None:
        for start in range(first, last, self.chunk):
            end = min(last, start + self.chunk)
            base32 = flat_base[start:end].to(self.device, torch.float32)
            deltas = self._buffer(end - start, worker)
            for index, tensor in enumerate(flats):
                torch.sub(tensor[start:end].to(self.device), base32, out=deltas[index])
                if rules is not None and rules[index] is not None:
                    rules[index].apply(deltas[index], start)
            mixed = combine_task_vectors(
                deltas,
                self.weights,
                consensus=self.ties,
                normalize=bool(self.params["normalize"]),
                lam=float(self.params["lambda"]),
                int8_mask=bool(self.params.get("int8_mask", False)),
            )
            if out.dtype == torch.float32:
                torch.add(base32, mixed, out=out[start:end])
                stored = out[start:end]
            else:
                out[start:end].copy_(mixed.add_(base32))  # base + mixed == mixed + base, bit for bit
                stored = out[start:end].to(torch.float32)
            norms[start // self.chunk] = float(torch.linalg.vector_norm(stored - base32, dtype=torch.float64)) ** 2
            if done is not None:
                done(end)

    def _buffer(self, size: int, worker: int = 0) -> torch.Tensor:
        if self._deltas is not None:
            return self._deltas[worker][:, :size]
        return torch.empty((self.weights.shape[0], size), dtype=torch.float32, device=self.device)


class ModelStockKernel:
    """Model Stock over one tensor: mergekit's arithmetic without its repeated passes
    (`repro.merge.model_stock_kernel`)."""

    def __init__(self, params: Mapping[str, Any], device: torch.device):
        self.filter_wise = bool(params.get("filter_wise", False))
        self.device = device

    def merge(self, base: torch.Tensor, inputs: Sequence[torch.Tensor], name: str,
              release: Callable[[int], None] | None = None) -> torch.Tensor:
        """`release(i)`: input i's pages may leave the process for now (it is read again if needed)."""
        from repro.merge.model_stock_kernel import model_stock_tensor

        del name
        return model_stock_tensor(base, inputs, filter_wise=self.filter_wise, device=self.device, release=release)


class GroupKernel:
    """A mergekit method object (stock Model Stock, or one of ours) on the whole tensor group."""

    def __init__(self, mergekit_name: str, params: Mapping[str, Any], ids: Sequence[Hashable], device: torch.device):
        from mergekit import merge_methods

        from repro.merge.mergekit_plugin import register_methods

        register_methods()
        self.method = merge_methods.get(mergekit_name)
        self.boost_count = None  # Subspace Boosting: the merge's `BoostCount` (see `subspace_boosting`)
        if hasattr(self.method, "with_observer"):
            from repro.merge.methods.subspace_boosting import BoostCount

            self.boost_count = BoostCount()
            self.method = self.method.with_observer(self.boost_count)
        self.parameters = dict(params)  # scalars: mergekit broadcasts per-model values itself
        self.ids = list(ids)
        self.device = device

    def use_svd_cache(self, svd_cache, paths: Sequence[Any]) -> None:
        """Hand the caller's SVD cache to a method that uses one (TSV-M: `with_svd_cache`), and id the
        inputs by content (`ContentKey`) so the method keys its cache without reading paths."""
        if hasattr(self.method, "with_svd_cache"):
            self.method = self.method.with_svd_cache(svd_cache)
            self.ids = content_ids(paths, svd_cache)

    def merge(self, base: torch.Tensor, inputs: Sequence[torch.Tensor], name: str) -> torch.Tensor:
        from mergekit.merge_methods.base import TensorGroup

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


def content_ids(paths: Sequence[Any], svd_cache) -> list:
    """Input ids keyed by content (`ContentKey`: position + the cache's content key of the directory)."""
    from repro.merge.svd_cache import ContentKey

    return [ContentKey(position, svd_cache.checkpoint_key(path)) for position, path in enumerate(paths)]


def model_ids(paths: Sequence[Any]) -> list:
    """mergekit input ids for the base and checkpoints (ModelReferences, as stock mergekit names them)."""
    from mergekit.common import ModelReference

    return [ModelReference.model_validate({"model": {"path": str(path)}}) for path in paths]


def require_device(device: str) -> torch.device:
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MergeError("CUDA is not available on this machine; use --device cpu", field="device")
        return torch.device(device)
    raise MergeError(f"must be cpu or cuda, got {device!r}", field="device")
