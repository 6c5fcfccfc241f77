"""Iso-C (Marczak et al., ICML 2025), as a mergekit merge method named `iso_c`.

Per tensor, with task vectors delta_i = W_i - W_0 in float32:
- every 2-D tensor except the vocabulary tensors (`repro.merge.tensor_roles`: embeddings, LM head): M = sum_i delta_i; reduced SVD M = U S V^T;
  Delta = mean(S) * U V^T (every singular value replaced by their mean);
- every other tensor: Delta = mean of the delta_i.
W = W_0 + Delta (lambda = 1, no normalization).
"""

from __future__ import annotations

import torch
from mergekit.merge_methods.base import TensorGroup

from repro.merge.mergekit_specs import facts_merge_method
from repro.merge.methods.spectral import base_plus_update, isotropic
from repro.merge.tensor_roles import is_decomposed_matrix


def iso_c_update(group: TensorGroup) -> torch.Tensor:
    """The Iso-C merged update Delta (float32) of one tensor group."""
    base = group.base.tensor.to(torch.float32)
    deltas = torch.stack([e.tensor.to(torch.float32) - base for e in group.non_base])
    if not is_decomposed_matrix(group.metadata.name, base.ndim):
        return deltas.mean(dim=0)
    return isotropic(deltas.sum(dim=0), group.metadata.name)


def iso_c_group(group: TensorGroup) -> torch.Tensor:
    return base_plus_update(group, iso_c_update)


# Name, title and input contract come from the method's facts (`repro.method_catalog`).
iso_c_merge_method = facts_merge_method("iso_c", iso_c_group)
