"""The arithmetic of the task-arithmetic family, one tensor (or one chunk of one) at a time.

- `combine_task_vectors` is mergekit 0.1.5's `GeneralizedTaskArithmeticMerge.merge_group` after
  sparsification, step by step (weighting, mergekit's `get_mask` sign election, the divisor, lambda). The
  chunked kernel (`repro.merge.elementwise_kernel`) and the Subspace Boosting methods call it.
- TIES' trim keeps the top-k entries of |delta| (k = max(1, int(density * numel)), mergekit's k): on the
  CPU exactly the entries stock mergekit keeps, ties at the cut-off included (its argsort is libstdc++'s
  unstable introsort; `repro.merge.stock_topk` replays the partitions that decide the boundary: O(n), not
  a full sort, compiled by numba, as is the trim's one pass per chunk). On an accelerator the threshold is
  selected there (`topk_threshold`); only where more entries equal it than are kept are the magnitudes
  copied to the CPU for stock's rule, so CUDA and CPU keep the same entries (`kept_ties`). TIES+SB trims
  with the same rule (`trim_by_magnitude`).

This module imports no method and no dispatch: methods import it, never the reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from repro.merge.stock_topk import compiled_kernels, stock_kept_ties, use_compiled

SELECT_DIRECTLY = 1 << 17  # TIES: below this many entries, select among all of them (no sampling)


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
    # mergekit is heavy: imported when a merge runs
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


class TrimRuleCache:
    """TIES' trim rules of one merge pass, shared by its merges: a checkpoint's rule for a tensor depends
    only on the checkpoint, the base, the tensor and the density, not on the subset it is merged in, so
    a grid pass finds each (tensor, checkpoint, density) rule once. Holds the current tensor's rules only
    (a pass merges tensor by tensor); `input_key` must identify the checkpoint within the pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the kernels' threads look rules up concurrently
        self._tensor: str | None = None
        self._rules: dict[tuple[str, Hashable, float], TrimRule] = {}
        self.found = 0  # rules computed (for tests)
        self.reused = 0

    def rule(self, tensor: str, input_key: Hashable, density: float, compute: Callable[[], TrimRule]) -> TrimRule:
        key = (tensor, input_key, float(density))
        with self._lock:
            if tensor != self._tensor:  # the pass moved on: the last tensor's rules are not needed again
                self._tensor, self._rules = tensor, {}
            found = self._rules.get(key)
            if found is not None:
                self.reused += 1
                return found
        found = compute()  # outside the lock: rules of other inputs are found concurrently
        with self._lock:
            self.found += 1
            if tensor == self._tensor:
                self._rules.setdefault(key, found)
        return found


def trim_by_magnitude(delta: torch.Tensor, density: float, rule: Callable[[Callable[[], TrimRule]], TrimRule]
                      | None = None) -> torch.Tensor:
    """mergekit's `sparsify(..., method=magnitude, rescale_norm=None)` as stock computes it on the CPU
    (its top-k of |delta| in float32, its choice among ties), on any device: `delta * mask`. `rule(compute)`,
    when given, returns the trim rule (e.g. from a `TrimRuleCache`), calling `compute()` if it has none."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    flat = delta.reshape(-1).to(torch.float32, copy=True)

    def compute() -> TrimRule:
        return TrimRule(*kept_ties(flat.abs(), max(1, int(density * flat.numel()))))

    (compute() if rule is None else rule(compute)).apply(flat, 0)
    return flat.to(delta.dtype).reshape(delta.shape)


def ties_trim_rules(base: torch.Tensor, inputs: Sequence[torch.Tensor], density: Sequence[float], pool=None,
                    compiled: bool | None = None, cache: TrimRuleCache | None = None, tensor: str = "",
                    input_keys: Sequence[Hashable] = ()) -> list:
    """Per input: None (density >= 1: nothing trimmed) or its TrimRule. Raises NonFiniteInput for the
    first input (in order) whose delta is not finite (a trimmed NaN would otherwise vanish from the merge).
    `pool` (a thread pool) computes the inputs' rules concurrently: each is independent of the others.
    `compiled`: whether to use the compiled kernels (None: by this tensor's size, `use_compiled`).
    `cache`: the pass's TrimRuleCache, with the tensor's name and each input's key in the pass (a rule
    found there was computed from the same finite delta)."""
    base32 = base.to(torch.float32)

    def compute(index: int) -> TrimRule:
        magnitude = (inputs[index].to(torch.float32) - base32).abs_().reshape(-1)
        if magnitude.numel() and not bool(torch.isfinite(magnitude.max())):  # max propagates NaN and +inf
            raise NonFiniteInput(index)
        fast = use_compiled(magnitude.numel()) if compiled is None else compiled
        k = max(1, int(density[index] * magnitude.numel()))
        return TrimRule(*kept_ties(magnitude, k, fast), compiled=fast)

    def rule(index: int):
        if density[index] >= 1:
            return None
        if cache is None:
            return compute(index)
        return cache.rule(tensor, input_keys[index], density[index], lambda: compute(index))

    if len(density) != len(inputs):
        raise ValueError("one density per input")
    indices = range(len(inputs))
    return list(pool.map(rule, indices)) if pool is not None and len(inputs) > 1 else [rule(i) for i in indices]


class NonFiniteInput(Exception):
    """Internal: input `index` (0-based among the non-base inputs) of the current tensor is not finite."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index

