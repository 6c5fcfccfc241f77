"""TSV-Merge (Gargiulo et al., CVPR 2025), as a mergekit merge method named `tsv_m`.

Per tensor, with task vectors delta_i = W_i - W_0 in float32 and T models:
- every 2-D tensor except the vocabulary tensors (`repro.merge.tensor_roles`: embeddings, LM head): reduced SVD of each delta_i; keep its first
  k = floor(r / T) singular triplets (r = min(rows, cols)) in disjoint blocks of the concatenated
  U, Sigma, V; replace the concatenated U and V each by its polar factor (SVD X = P D Q^T -> P Q^T);
  Delta = U_perp diag(Sigma) V_perp^T;
- every other tensor: Delta = mean of the delta_i.
W = W_0 + Delta (lambda = 1, no normalization, model weights ignored).

Per-checkpoint decompositions come from the active `SvdCache` when the merge runs with one.
"""

from __future__ import annotations

import torch
from mergekit.merge_methods.base import TensorEntry, TensorGroup

from repro.merge.methods.spectral import base_plus_update, is_decomposed_matrix, robust_svd
from repro.merge.registry import facts_merge_method
from repro.merge.svd_cache import active_svd_cache


def entry_checkpoint_path(entry_id) -> str | None:
    """The checkpoint directory behind a mergekit input id (a ModelReference), if it is local."""
    model = getattr(entry_id, "model", None)
    path = getattr(model, "path", None)
    if getattr(entry_id, "lora", None) is not None or getattr(model, "revision", None):
        return None
    return path if isinstance(path, str) else None


def _leading_triplets(entry: TensorEntry, base_entry: TensorEntry, base: torch.Tensor, name, rank: int):
    def compute():
        return robust_svd(entry.tensor.to(torch.float32) - base, name)

    cache = active_svd_cache()
    checkpoint, base_path = entry_checkpoint_path(entry.id), entry_checkpoint_path(base_entry.id)
    if cache is None or checkpoint is None or base_path is None or not name:
        u, s, vh = compute()
        return u[:, :rank], s[:rank], vh[:rank, :]
    return cache.leading_factors(checkpoint, base_path, name, rank, base.device, compute)


def polar_factor(matrix: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """The orthogonal polar factor P Q^T of matrix = P D Q^T (closest semi-orthogonal matrix)."""
    p, _, qh = robust_svd(matrix, name)
    return p @ qh


def tsv_merge_update(group: TensorGroup) -> torch.Tensor:
    """The TSV-M merged update Delta (float32) of one tensor group."""
    name = group.metadata.name
    base_entry = group.base
    base = base_entry.tensor.to(torch.float32)
    entries = group.non_base
    if not is_decomposed_matrix(name, base):
        return torch.stack([e.tensor.to(torch.float32) - base for e in entries]).mean(dim=0)
    rank = min(base.shape) // len(entries)
    if rank == 0:
        return torch.zeros_like(base)
    triplets = [_leading_triplets(e, base_entry, base, name, rank) for e in entries]
    u_cat = torch.cat([u for u, _, _ in triplets], dim=1)
    s_cat = torch.cat([s for _, s, _ in triplets])
    vh_cat = torch.cat([vh for _, _, vh in triplets], dim=0)
    del triplets
    u_perp = polar_factor(u_cat, name)
    vh_perp = polar_factor(vh_cat, name)
    return (u_perp * s_cat) @ vh_perp


def tsv_m_group(group: TensorGroup) -> torch.Tensor:
    return base_plus_update(group, tsv_merge_update)


# Name, title and input contract come from the method's facts (`repro.method_catalog`).
tsv_m_merge_method = facts_merge_method("tsv_m", tsv_m_group)
