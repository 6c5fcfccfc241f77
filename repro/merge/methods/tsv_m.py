"""TSV-Merge (Gargiulo et al., CVPR 2025), as a mergekit merge method named `tsv_m`.

Per tensor, with task vectors delta_i = W_i - W_0 in float32 and T models:
- every 2-D tensor except the vocabulary tensors (`repro.merge.tensor_roles`: embeddings, LM head): reduced SVD of each delta_i; keep its first
  k = floor(r / T) singular triplets (r = min(rows, cols)) in disjoint blocks of the concatenated
  U, Sigma, V; replace the concatenated U and V each by its polar factor (SVD X = P D Q^T -> P Q^T);
  Delta = U_perp diag(Sigma) V_perp^T;
- every other tensor: Delta = mean of the delta_i.
W = W_0 + Delta (lambda = 1, no normalization, model weights ignored).

Per-checkpoint decompositions come from the engine's `SvdCache` when the merge runs with one: the engine
gives the inputs content keys as ids (`ContentKey`); the method never derives keys from file paths.
"""

from __future__ import annotations

import torch
from mergekit.merge_methods.base import FunctionalGroupMergeMethod, TensorEntry, TensorGroup

from repro.merge.mergekit_specs import mergekit_spec
from repro.merge.methods.spectral import base_plus_update, robust_svd
from repro.merge.svd_cache import ContentKey, SvdCache
from repro.merge.tensor_roles import is_decomposed_matrix


def _leading_triplets(entry: TensorEntry, base_entry: TensorEntry, base: torch.Tensor, name, rank: int,
                      svd_cache: SvdCache | None):
    def compute():
        return robust_svd(entry.tensor.to(torch.float32) - base, name)

    keyed = isinstance(entry.id, ContentKey) and isinstance(base_entry.id, ContentKey)
    if svd_cache is None or not keyed or not name:
        u, s, vh = compute()
        return u[:, :rank], s[:rank], vh[:rank, :]
    return svd_cache.leading_factors(entry.id.key, base_entry.id.key, name, rank, base.device, compute)


def polar_factor(matrix: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """The orthogonal polar factor P Q^T of matrix = P D Q^T (closest semi-orthogonal matrix)."""
    p, _, qh = robust_svd(matrix, name)
    return p @ qh


def tsv_merge_update(group: TensorGroup, svd_cache: SvdCache | None = None) -> torch.Tensor:
    """The TSV-M merged update Delta (float32) of one tensor group (decompositions from `svd_cache` when
    the engine gives one and keys the inputs by content)."""
    name = group.metadata.name
    base_entry = group.base
    base = base_entry.tensor.to(torch.float32)
    entries = group.non_base
    if not is_decomposed_matrix(name, base.ndim):
        return torch.stack([e.tensor.to(torch.float32) - base for e in entries]).mean(dim=0)
    rank = min(base.shape) // len(entries)
    if rank == 0:
        return torch.zeros_like(base)
    triplets = [_leading_triplets(e, base_entry, base, name, rank, svd_cache) for e in entries]
    u_cat = torch.cat([u for u, _, _ in triplets], dim=1)
    s_cat = torch.cat([s for _, s, _ in triplets])
    vh_cat = torch.cat([vh for _, _, vh in triplets], dim=0)
    del triplets
    u_perp = polar_factor(u_cat, name)
    vh_perp = polar_factor(vh_cat, name)
    return (u_perp * s_cat) @ vh_perp


class TsvMerge(FunctionalGroupMergeMethod):
    """The `tsv_m` mergekit method. The registered object has no cache (stock `mergekit-yaml` runs it so);
    the engine merges with `with_svd_cache(cache)`, a copy that reuses the cache's decompositions for
    inputs whose ids are `ContentKey`s. Spec (name, title, input contract) from `repro.method_catalog`."""

    def __init__(self, svd_cache: SvdCache | None = None):
        super().__init__(mergekit_spec("tsv_m"), self._merge_group)
        self.svd_cache = svd_cache

    def with_svd_cache(self, svd_cache: SvdCache) -> TsvMerge:
        return TsvMerge(svd_cache)

    def _merge_group(self, group: TensorGroup) -> torch.Tensor:
        return base_plus_update(group, lambda g: tsv_merge_update(g, self.svd_cache))


tsv_m_merge_method = TsvMerge()
