"""Spectral building blocks shared by the subspace methods: a robust SVD and tensor-name rules."""

from __future__ import annotations

import torch

from repro.errors import MergeError
from repro.merge import tensor_roles


def is_decomposed_matrix(name: str | None, tensor: torch.Tensor) -> bool:
    """TSV-M / Iso-C decompose every 2-D tensor except vocabulary tensors (`repro.merge.tensor_roles`)."""
    return tensor_roles.is_decomposed_matrix(name, tensor.ndim)


def is_boosted_matrix(name: str | None, tensor: torch.Tensor) -> bool:
    """Subspace Boosting touches only the attention / MLP projection weight matrices."""
    return tensor_roles.is_projection_matrix(name, tensor.ndim)


def robust_svd(
    matrix: torch.Tensor, name: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reduced SVD (U, S, Vh) in float32 on the matrix's device.

    A wide matrix (fewer rows than columns) is decomposed as its transpose, which LAPACK handles several
    times faster (same factors up to rounding: A^T = U' S V'^T gives A = V' S U'^T). The default
    LAPACK/cuSOLVER driver is tried first; if it fails to converge, the slower but more robust
    QR-iteration driver (gesvd) is used, in float64 on the CPU, before giving up with a MergeError
    naming the tensor.
    """
    matrix = matrix.to(torch.float32)
    if matrix.ndim == 2 and matrix.shape[0] < matrix.shape[1]:
        u, s, vh = robust_svd(matrix.mT, name)
        return vh.mT, s, u.mT
    try:
        return torch.linalg.svd(matrix, full_matrices=False)
    except (torch.linalg.LinAlgError, RuntimeError) as first_error:
        if matrix.is_cuda:
            try:
                return torch.linalg.svd(matrix, full_matrices=False, driver="gesvd")
            except (torch.linalg.LinAlgError, RuntimeError):
                pass
        try:
            u, s, vh = _gesvd_float64(matrix)
        except (ValueError, ArithmeticError, RuntimeError) as error:
            raise MergeError(
                f"the SVD of tensor {name or '<unnamed>'} {tuple(matrix.shape)} did not converge with "
                f"gesdd ({first_error}) nor gesvd ({error}); check the input checkpoints for broken values",
                field=name,
            ) from error
        to = dict(device=matrix.device, dtype=torch.float32)
        return torch.from_numpy(u).to(**to), torch.from_numpy(s).to(**to), torch.from_numpy(vh).to(**to)


def _gesvd_float64(matrix: torch.Tensor):
    """QR-iteration SVD in float64 on the CPU (scipy's gesvd when available, else torch float64)."""
    array = matrix.detach().cpu().double()
    try:
        import scipy.linalg
    except ImportError:
        return (t.numpy() for t in torch.linalg.svd(array, full_matrices=False))
    return scipy.linalg.svd(array.numpy(), full_matrices=False, lapack_driver="gesvd")


def boost_spectrum(update: torch.Tensor, beta: float, name: str | None = None) -> torch.Tensor:
    """Subspace Boosting of one merged update matrix (float32).

    k = first index with cumsum(sigma) / sum(sigma) >= beta; every singular value below sigma_k is
    raised to sigma_k. If no index qualifies or no singular value would change, the input tensor is
    returned unchanged (bit for bit), so beta = 1 is the identity.
    """
    u, s, vh = robust_svd(update, name)
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return update
    reached = torch.nonzero(torch.cumsum(s, dim=0) / total >= beta)
    if reached.numel() == 0:
        return update
    floor = s[int(reached[0, 0])]
    if not bool((s < floor).any()):
        return update
    return ((u * torch.clamp(s, min=floor)) @ vh).to(update.dtype)


def isotropic(update: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """Iso-C: U diag(mean(sigma)) V^T of the update's reduced SVD (float32)."""
    u, s, vh = robust_svd(update, name)
    return (s.mean() * (u @ vh)).to(update.dtype)


def base_plus_update(group, update_of) -> torch.Tensor:
    """W_0 + update_of(group), computed in float32 and cast back to the base dtype (lambda = 1).

    With no fine-tuned inputs for a tensor, the base tensor is returned unchanged.
    """
    base = group.base.tensor
    if not group.non_base:
        return base
    return (base.to(torch.float32) + update_of(group)).to(base.dtype)
