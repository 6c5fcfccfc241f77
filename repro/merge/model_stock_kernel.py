"""Model Stock on one tensor: stock mergekit's arithmetic, step for step, in bounded memory.

mergekit 0.1.5's `model_stock_merge_method` converts every input to float32, forms the n task vectors,
and for each of the n(n-1)/2 pairs computes both norms and the elementwise product's sum; then it sums
the float32 weights and interpolates with the base. The same operations on the same tensors give the
same bits, so this kernel changes only what is kept and what is repeated:
- each task vector's norm is computed once (stock recomputes it in every pair: same op, same value);
- the pair products go to one reused buffer (same elementwise product, same `sum`);
- at most `cache` task vectors are held at once. Pairs are taken in blocks: a block of `cache` task
  vectors is formed, its pairs computed, then every later task vector is formed again, one at a time,
  for its pairs with the block. Forming a task vector again is the same elementwise subtraction (the
  same bits); the pair results are stacked in stock's order before the mean. With n <= cache, every
  task vector is formed once, as before;
- the weights' float32 sum (Python's `sum`: `0 + w1`, then `+ w2`, ...) is formed after the pairs,
  elementwise, so it needs no buffer while they are computed.
Memory: `cache` + 3 float32 tensors of this tensor's size (stock: 2n + 2); with `release`, the pages of
a memory-mapped input leave the process after each read, so the inputs add about one bf16 tensor, not n.
Equality with mergekit's function is tested (tests/test_merge_streaming.py), for every cache size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

CACHE_BYTES = {"cpu": 1 << 30}  # float32 task vectors held at once, per device type (others: all of them)


def cache_size(numel: int, count: int, device: torch.device) -> int:
    """How many task vectors to hold at once: what fits in the device's budget, at least 2, at most all."""
    budget = CACHE_BYTES.get(device.type)
    if budget is None or numel == 0:
        return count
    return max(2, min(count, budget // (4 * numel)))


def model_stock_tensor(base: torch.Tensor, inputs: Sequence[torch.Tensor], *, filter_wise: bool,
                       device: torch.device, cache: int | None = None,
                       release: Callable[[int], None] | None = None) -> torch.Tensor:
    """mergekit's Model Stock of `base` and `inputs` (float32 on `device`, the base's shape), holding at
    most `cache` float32 task vectors at once (None: `cache_size`). `release(i)` is called each time
    input i has been read (a memory-mapped input's pages can then leave the process until next read)."""
    out_shape = base.shape

    def shaped(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(device)
        if filter_wise:
            return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor
        return tensor.reshape(-1)

    w_0 = shaped(base).to(torch.float32)  # never written
    weights = [shaped(tensor) for tensor in inputs]
    count = len(weights)

    def task_vector(index: int) -> torch.Tensor:  # float32(w) - float32(w_0), a new tensor
        offset = weights[index].to(torch.float32, copy=True).sub_(w_0)
        if release is not None:
            release(index)
        return offset

    if cache is None:
        cache = cache_size(w_0.numel(), count, device)
    cache = max(1, cache)
    norms: list[torch.Tensor | None] = [None] * count
    cos: dict[tuple[int, int], torch.Tensor] = {}
    product = torch.empty(w_0.shape, dtype=torch.float32, device=device)

    def pair(a: int, offset_a: torch.Tensor, b: int, offset_b: torch.Tensor) -> None:
        dot = torch.mul(offset_a, offset_b, out=product).sum(dim=-1)
        cos[(a, b)] = (dot / (norms[a] * norms[b]).clamp(min=1e-6)).clamp(-1, 1)

    for first in range(0, count, cache):
        block = list(range(first, min(count, first + cache)))
        held = {}
        for a in block:
            held[a] = task_vector(a)
            if norms[a] is None:
                norms[a] = torch.norm(held[a], dim=-1)
        for i, a in enumerate(block):
            for b in block[i + 1:]:
                pair(a, held[a], b, held[b])
        for b in range(block[-1] + 1, count):  # later task vectors, one at a time, against the block
            offset_b = task_vector(b)
            if norms[b] is None:
                norms[b] = torch.norm(offset_b, dim=-1)
            for a in block:
                pair(a, held[a], b, offset_b)
            del offset_b
        del held
    cos_theta = torch.stack([cos[(a, b)] for a in range(count) for b in range(a + 1, count)]).mean(dim=0)
    cos_theta = cos_theta.unsqueeze(-1)
    denominator = 1 + (count - 1) * cos_theta
    singular = denominator.abs() < 1e-6
    safe_denominator = torch.where(singular, torch.ones_like(denominator), denominator)
    t = torch.where(singular, torch.zeros_like(cos_theta), (count * cos_theta) / safe_denominator)
    total = weights[0].to(torch.float32, copy=True).add_(0)  # Python's sum: 0 + w1, + w2, ...
    for index, weight in enumerate(weights):
        if index:
            total.add_(weight.to(torch.float32))  # float32 + float32: torch's fast path, the same bits
        if release is not None:
            release(index)
    average = total.div_(count)
    return average.mul_(t).add_((1 - t) * w_0).reshape(out_shape)
