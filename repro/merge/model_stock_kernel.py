"""Model Stock on one tensor: stock mergekit's arithmetic, step for step, in fewer passes and less memory.

mergekit 0.1.5's `model_stock_merge_method` converts every input to float32, forms the n task vectors,
and for each of the n(n-1)/2 pairs computes both norms and the elementwise product's sum; then it sums
the float32 weights and interpolates with the base. The same operations on the same tensors give the
same bits, so this kernel only drops what is repeated or kept for nothing:
- each task vector's norm is computed once (stock recomputes it in every pair: same op, same value);
- the pair products go to one reused buffer (same elementwise product, same `sum`);
- the float32 copies of the weights are not kept: each is added to the running sum (in stock's order:
  Python's `sum` starts from 0, `0 + w1`, then `+ w2`, ...) and then turned into its task vector in place.
Memory: n float32 task vectors plus three buffers of the largest tensor, instead of stock's 2n + 2.
Equality with mergekit's function is tested (tests/test_merge_streaming.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def model_stock_tensor(base: torch.Tensor, inputs: Sequence[torch.Tensor], *, filter_wise: bool,
                       device: torch.device) -> torch.Tensor:
    out_shape = base.shape
    w_0 = base.to(device=device, dtype=torch.float32)

    def shaped(tensor: torch.Tensor) -> torch.Tensor:
        if filter_wise:
            return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor
        return tensor.reshape(-1)

    def weight(tensor: torch.Tensor) -> torch.Tensor:
        return shaped(tensor.to(device=device, dtype=torch.float32))

    w_0 = shaped(w_0)
    offsets, total = [], None
    for tensor in inputs:
        offset = weight(tensor)
        if offset.data_ptr() == tensor.data_ptr():  # already float32 on the device: never write an input
            offset = offset.clone()
        # Python's sum(ws), in stock's order: 0 + w1 (a new tensor), then + w2, ...
        total = offset + 0 if total is None else total.add_(offset)
        offsets.append(offset.sub_(w_0))
    norms = [torch.norm(offset, dim=-1) for offset in offsets]
    product = torch.empty_like(offsets[0])
    cos_thetas = []
    for a, offset_a in enumerate(offsets):
        for b in range(a + 1, len(offsets)):
            norm_product = norms[a] * norms[b]
            dot = torch.mul(offset_a, offsets[b], out=product).sum(dim=-1)
            cos_thetas.append((dot / norm_product.clamp(min=1e-6)).clamp(-1, 1))
    del offsets, product
    cos_theta = torch.stack(cos_thetas).mean(dim=0).unsqueeze(-1)
    count = len(inputs)
    denominator = 1 + (count - 1) * cos_theta
    singular = denominator.abs() < 1e-6
    safe_denominator = torch.where(singular, torch.ones_like(denominator), denominator)
    t = torch.where(singular, torch.zeros_like(cos_theta), (count * cos_theta) / safe_denominator)
    average = total.div_(count)
    return average.mul_(t).add_((1 - t) * w_0).reshape(out_shape)
