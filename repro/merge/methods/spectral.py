"""Spectral building blocks shared by the subspace methods: a robust SVD and tensor-name rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from repro.errors import MergeError
from repro.merge.tensor_roles import is_projection_matrix


def is_boosted_matrix(name: str | None, tensor: torch.Tensor) -> bool:
    """Subspace Boosting touches only the attention / MLP projection weight matrices."""
    return is_projection_matrix(name, tensor.ndim)


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
        # optional: used only when installed
        import scipy.linalg
    except ImportError:
        return (t.numpy() for t in torch.linalg.svd(array, full_matrices=False))
    return scipy.linalg.svd(array.numpy(), full_matrices=False, lapack_driver="gesvd")


NULL_TOLERANCE = "sigma_max * max(rows, cols) * eps(float32)"


def null_tolerance(s: torch.Tensor, shape: tuple[int, ...]) -> float:
    """The largest singular value counted as numerically zero: sigma_max * max(rows, cols) * eps(float32),
    numpy's `matrix_rank` rule (and LAPACK's usual one) for a float32 SVD."""
    if s.numel() == 0:
        return 0.0
    return float(s.max()) * max(shape) * float(torch.finfo(torch.float32).eps)


@dataclass(frozen=True)
class BoostOutcome:
    """What boosting one matrix did: `boosted` (some singular value raised) and `raised_null` (a raised
    one was numerically zero: its singular vectors are arbitrary, any correct SVD may pick others)."""

    boosted: bool = False
    raised_null: bool = False


def cutoff_index(s: torch.Tensor, beta: float) -> int | None:
    """j* = min{j : sum_{i<=j} sigma_i >= beta * sum_i sigma_i} (0-based), decided in float64 on the
    float32 singular values; beta >= 1 is the last index outright (so beta = 1 never raises anything,
    whatever the rounding of the cumulative sum), beta <= 0 the first. None when the sum is not positive
    and finite."""
    values = s.to(torch.float64)
    total = values.sum()
    if not bool(torch.isfinite(total)) or float(total) <= 0:
        return None
    if beta >= 1:
        return values.numel() - 1
    if beta <= 0:
        return 0
    reached = torch.nonzero(torch.cumsum(values, dim=0) >= beta * total)
    return int(reached[0, 0]) if reached.numel() else values.numel() - 1


def boost_spectrum_outcome(
    update: torch.Tensor, beta: float, name: str | None = None, keep_null: bool = False
) -> tuple[torch.Tensor, BoostOutcome]:
    """Subspace Boosting of one merged update matrix (float32), and what it did.

    j* = `cutoff_index(sigma, beta)`; every singular value below sigma_j* is raised to sigma_j* (beta = 0:
    every one to the largest). With `keep_null`, numerically-zero singular values (`null_tolerance`)
    stay zero instead: the result is then determined by the matrix alone. If no singular value would
    change, the input tensor is returned unchanged (bit for bit), so beta = 1 is the identity.
    """
    u, s, vh = robust_svd(update, name)
    index = cutoff_index(s, beta)
    if index is None:
        return update, BoostOutcome()
    floor = s[index]
    raised = s < floor
    null = s <= null_tolerance(s, tuple(update.shape))
    if keep_null:
        raised = raised & ~null
    if not bool(raised.any()):
        return update, BoostOutcome()
    boosted = torch.where(raised, floor, s)
    if keep_null:
        boosted = torch.where(null, torch.zeros_like(s), boosted)
    outcome = BoostOutcome(boosted=True, raised_null=bool((raised & null).any()))
    return ((u * boosted) @ vh).to(update.dtype), outcome


def boost_spectrum(update: torch.Tensor, beta: float, name: str | None = None, keep_null: bool = False) -> torch.Tensor:
    """`boost_spectrum_outcome`'s boosted matrix alone."""
    return boost_spectrum_outcome(update, beta, name, keep_null)[0]


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


@dataclass
class BoostCount:
    """Per merge: the projection matrices boosted, and those whose raised singular values included
    numerically-zero ones (`spectral.null_tolerance`): their merged tensors depend on the SVD library."""

    matrices: int = 0
    boosted: int = 0
    raised_null: list[str] = field(default_factory=list)

    def __call__(self, name: str, outcome: BoostOutcome) -> None:
        self.matrices += 1
        self.boosted += int(outcome.boosted)
        if outcome.raised_null:
            self.raised_null.append(name)

    def as_record(self) -> dict[str, Any]:
        return {
            "projection_matrices": self.matrices,
            "boosted": self.boosted,
            "raised_null": len(self.raised_null),
            "raised_null_tensors": list(self.raised_null),
            "null_tolerance": NULL_TOLERANCE,
        }
