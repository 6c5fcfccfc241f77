"""The chunked kernel of the task-arithmetic family (methods whose traits say `kernel=ELEMENTWISE`).

Task Arithmetic, TIES and their elementwise variants are elementwise once each checkpoint's trim
threshold is known (traits `trim`, `sign_consensus`), so they run over the flattened tensor in chunks of
`chunk` elements (bounded memory, cache-sized) with mergekit's own arithmetic
(`repro.merge.arithmetic.combine_task_vectors`). Chunks are multiples of 64 elements, so torch's
reductions over the stacked inputs give the same bits as on the whole tensor (tested). On the CPU,
contiguous runs of chunks are merged by as many threads as torch's setting, and the task vector's
squared norm is summed per chunk in the same pass (`merge_with_norm`); neither changes a bit. Without trim
and sign election (Task Arithmetic) bf16 checkpoints run as one compiled pass per run of whole chunks
where the merge is large enough (`repro.merge.compiled_task_arithmetic`: the same additions in the same
order, so the same stored bits; about 4x less CPU than torch's ops, tested against them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from repro.merge.arithmetic import combine_task_vectors, ties_trim_rules, weights_sum
from repro.merge.stock_topk import use_compiled
from repro.method_catalog import MethodTraits

CPU_CHUNK = 1 << 16  # elements per chunk on the CPU (a multiple of 64, see above)


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """The threads that merge runs of chunks (and TIES' trim rules) concurrently."""
    return ThreadPoolExecutor(workers, thread_name_prefix="repro-merge")



class ElementwiseKernel:
    """A method of the task-arithmetic family over one tensor, chunk by chunk, for a fixed list of inputs:
    each delta trimmed to its top `density` magnitudes where `traits.trim`, signs elected where
    `traits.sign_consensus` (TIES: both; Task Arithmetic: neither).

    With `workers` > 1 (CPU), contiguous runs of chunks are merged by that many threads at once (torch
    releases the GIL in its kernels), and TIES' per-input trim rules are found concurrently. Every chunk
    is computed exactly as by one thread, into its own slice of the output: the bits do not depend on
    `workers`. `pool` (a ThreadPoolExecutor with `workers` threads) may be shared by many kernels (the
    grid); without one the kernel makes its own: then call `close()` when done."""

    def __init__(self, traits: MethodTraits, params: Mapping[str, Any], n_inputs: int, device: torch.device,
                 chunk: int, workers: int = 1, pool=None, compiled: bool | None = None):
        self.trim = traits.trim
        self.consensus = traits.sign_consensus
        self.compiled = compiled  # the compiled trim / TA pass (None: decided per tensor by size)
        self.params = params
        self.device = device
        self.chunk = chunk
        self.workers = max(1, int(workers)) if device.type == "cpu" else 1
        self.weights = torch.full((n_inputs, 1), float(params["weight"]), dtype=torch.float32, device=device)
        self._deltas = (
            [torch.empty((n_inputs, chunk), dtype=torch.float32, device=device) for _ in range(self.workers)]
            if chunk <= CPU_CHUNK else None
        )
        self.trim_cache = None  # the pass's TrimRuleCache (TIES), with this merge's input keys in the pass
        self.input_keys: tuple = ()
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
        name: str = "",
    ) -> torch.Tensor:
        """The merged tensor (`out_dtype`, on the device) from base and inputs (any dtype, any device);
        each chunk is cast as mergekit casts its result (float32, then `out_dtype`). `done(end)` is
        called after the elements [0, end) are merged (the inputs' pages there may be released)."""
        return self.merge_with_norm(base, inputs, out_dtype, done, name)[0]

    def merge_with_norm(
        self,
        base: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        out_dtype: torch.dtype = torch.float32,
        done: Callable[[int], None] | None = None,
        name: str = "",
    ) -> tuple[torch.Tensor, float]:
        """`merge`, and ||merged - base||^2 computed in the same pass, chunk by chunk while the chunk is
        in cache: the difference of the stored (cast) values in float32, squares summed in float64 per
        chunk, the chunks' sums added in chunk order (the same bits whatever `workers`). NaN/Inf if the
        merged tensor is not finite. `name`: the tensor's name (keys the pass's trim rules)."""
        rules = None
        if self.trim:
            cache = self.trim_cache if name else None
            rules = ties_trim_rules(
                base.to(self.device), [t.to(self.device) for t in inputs], [self.params["density"]] * len(inputs),
                pool=self._pool, compiled=self.compiled, cache=cache, tensor=name, input_keys=self.input_keys,
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
        if self.trim or self.consensus:  # the compiled pass is the plain weighted sum
            return None
        if self.device.type != "cpu" or out.dtype not in (torch.bfloat16, torch.float32):
            return None
        if not 1 <= len(flats) <= 16:  # torch sums up to 17 rows in order, more in a cascade
            return None
        tensors = [flat_base, *flats]
        if any(t.dtype != torch.bfloat16 or t.device.type != "cpu" or not t.is_contiguous() for t in tensors):
            return None
        entries = flat_base.numel() * len(flats)
        if not (self.compiled if self.compiled is not None else use_compiled(entries, trim=False)):
            return None
        try:
            # optional: used only when installed
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
                consensus=self.consensus,
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
