"""Property tests of the merge kernels, in memory through mergekit's own method interface."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mergekit.merge_methods import merge_tensors  # noqa: E402

from repro.errors import MergeError  # noqa: E402
from repro.merge.mergekit_plugin import register_methods  # noqa: E402
from repro.merge.methods import spectral  # noqa: E402
from repro.merge.methods.spectral import boost_spectrum, robust_svd  # noqa: E402

register_methods()

PROJ = "model.layers.0.self_attn.q_proj.weight"


def merge(method, base, deltas, name=PROJ, **params):
    tensors = [base] + [base + d for d in deltas]
    return merge_tensors(tensors, method, parameters=params, base_index=0, name=name, dtype=torch.float32)


def random_inputs(n=3, shape=(12, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    return base, [0.1 * torch.randn(shape, generator=g) for _ in range(n)]


def ties_reference(base, deltas, density, lam):
    """Independent TIES (Yadav et al.): trim to top-k |delta|, elect sign of the sum, mean of agreeing."""
    trimmed = []
    for d in deltas:
        k = max(1, int(density * d.numel()))
        threshold_idx = torch.topk(d.abs().flatten(), k).indices
        keep = torch.zeros(d.numel(), dtype=torch.bool)
        keep[threshold_idx] = True
        trimmed.append(torch.where(keep.view_as(d), d, torch.zeros_like(d)))
    stacked = torch.stack(trimmed)
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (torch.sign(stacked) == elected) & (stacked != 0)
    total = torch.where(agree, stacked, torch.zeros_like(stacked)).sum(0)
    count = agree.sum(0).clamp(min=1).to(total.dtype)
    return base + lam * total / count, total, count


def test_mergekit_ties_matches_independent_reference():
    base, deltas = random_inputs(n=4, shape=(16, 10))
    ours = merge(
        "ties", base, deltas, density=0.1, normalize=True, **{"lambda": 0.1}, int8_mask=False, weight=1.0
    )
    expected, _, _ = ties_reference(base, deltas, 0.1, 0.1)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-7)


def test_ties_with_density_one_and_agreeing_signs_is_task_arithmetic_mean():
    base, deltas = random_inputs(n=3)
    deltas = [d.abs() + 0.01 for d in deltas]  # every entry agrees (+)
    ties = merge("ties", base, deltas, density=1.0, normalize=True, **{"lambda": 1.0}, weight=1.0)
    ta = merge("task_arithmetic", base, deltas, normalize=True, **{"lambda": 1.0}, weight=1.0)
    torch.testing.assert_close(ties, ta, rtol=0, atol=1e-6)
    torch.testing.assert_close(ta, base + torch.stack(deltas).mean(0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", [PROJ, "model.norm.weight", "model.embed_tokens.weight"])
def test_ties_sb_with_beta_one_equals_stock_ties_bitwise(name):
    base, deltas = random_inputs(n=4, shape=(16,) if "norm" in name else (16, 10), seed=3)
    params = dict(density=0.1, normalize=True, weight=1.0, **{"lambda": 0.1})
    # ties_sb takes the parameters its facts declare (repro.method_catalog): no int8_mask (memory only)
    stock = merge("ties", base, deltas, name=name, int8_mask=False, **params)
    boosted = merge("ties_sb", base, deltas, name=name, beta=1.0, **params)
    assert torch.equal(stock, boosted)


@pytest.mark.parametrize("normalize", [True, False])
def test_task_arithmetic_sb_with_beta_one_equals_stock_task_arithmetic_bitwise(normalize):
    base, deltas = random_inputs(n=3, seed=4)
    stock = merge("task_arithmetic", base, deltas, normalize=normalize, weight=1.0)
    boosted = merge("task_arithmetic_sb", base, deltas, beta=1.0, weight=1.0, normalize=normalize)
    assert torch.equal(stock, boosted)


def test_boost_spectrum_raises_tail_to_cutoff_and_keeps_singular_vectors():
    g = torch.Generator().manual_seed(7)
    u, _ = torch.linalg.qr(torch.randn(10, 6, generator=g))
    v, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    sigma = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.1])
    matrix = (u * sigma) @ v.T
    beta = 0.7  # cumsum/total = .53, .79 -> k = 1, cutoff 5.0
    out = boost_spectrum(matrix, beta)
    expected = (u * torch.clamp(sigma, min=5.0)) @ v.T
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        torch.linalg.svdvals(out), torch.tensor([10.0, 5, 5, 5, 5, 5]), rtol=1e-5, atol=1e-5
    )


def test_task_arithmetic_sb_boosts_only_projection_matrices():
    base, deltas = random_inputs(n=3, shape=(12, 8), seed=5)
    ta = merge("task_arithmetic", base, deltas, name="model.embed_tokens.weight", normalize=False, weight=1.0)
    sb_embed = merge(
        "task_arithmetic_sb", base, deltas, name="model.embed_tokens.weight", beta=0.2, weight=1.0, normalize=False
    )
    assert torch.equal(ta, sb_embed)
    sb_proj = merge("task_arithmetic_sb", base, deltas, name=PROJ, beta=0.2, weight=1.0, normalize=False)
    total = torch.stack(deltas).sum(0)
    torch.testing.assert_close(sb_proj, base + boost_spectrum(total, 0.2), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(sb_proj, ta, atol=1e-4)
    # normalize (the paper's setting, the default): the boosted sum divided by the weights' sum
    normalized = merge("task_arithmetic_sb", base, deltas, name=PROJ, beta=0.2, weight=1.0)
    torch.testing.assert_close(normalized, base + boost_spectrum(total, 0.2) / 3, rtol=1e-6, atol=1e-6)


def test_ties_sb_boosts_the_agreeing_sum_before_dividing_by_the_count():
    base, deltas = random_inputs(n=4, shape=(16, 10), seed=6)
    out = merge("ties_sb", base, deltas, name=PROJ, density=0.5, beta=0.2, weight=1.0, **{"lambda": 0.1})
    _, total, count = ties_reference(base, deltas, 0.5, 0.1)
    expected = base + 0.1 * boost_spectrum(total, 0.2) / count
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_iso_c_flattens_the_spectrum_of_the_sum_within_its_subspace():
    base, deltas = random_inputs(n=3, shape=(12, 5), seed=8)
    out = merge("iso_c", base, deltas, name=PROJ)
    update = out - base
    total = torch.stack(deltas).sum(0)
    sigma = torch.linalg.svdvals(total)
    torch.testing.assert_close(torch.linalg.svdvals(update), sigma.mean().expand(5), rtol=1e-4, atol=1e-5)
    u = torch.linalg.svd(total, full_matrices=False).U
    torch.testing.assert_close(u @ (u.T @ update), update, rtol=1e-4, atol=1e-5)  # same column space


@pytest.mark.parametrize("method", ["iso_c", "tsv_m"])
@pytest.mark.parametrize("name,shape", [("model.norm.weight", (12,)), ("model.embed_tokens.weight", (12, 5))])
def test_subspace_methods_average_vectors_and_embeddings(method, name, shape):
    base, deltas = random_inputs(n=3, shape=shape, seed=9)
    out = merge(method, base, deltas, name=name)
    torch.testing.assert_close(out, base + torch.stack(deltas).mean(0), rtol=0, atol=1e-6)


def test_tsv_m_of_orthogonal_rank_one_updates_with_r_equal_t_is_their_sum():
    g = torch.Generator().manual_seed(10)
    t = 3
    u, _ = torch.linalg.qr(torch.randn(t, t, generator=g))
    v, _ = torch.linalg.qr(torch.randn(7, t, generator=g))
    deltas = [s * torch.outer(u[:, i], v[:, i]) for i, s in enumerate([3.0, 2.0, 0.5])]
    base = torch.randn(t, 7, generator=g)
    out = merge("tsv_m", base, deltas, name=PROJ)
    torch.testing.assert_close(out, base + sum(deltas), rtol=1e-5, atol=1e-5)


def test_tsv_m_keeps_only_the_top_one_over_t_triplets():
    base, deltas = random_inputs(n=2, shape=(8, 8), seed=11)
    out = merge("tsv_m", base, deltas, name=PROJ)
    assert int(torch.linalg.matrix_rank(out - base, atol=1e-4)) == 8  # 2 models x 4 triplets, orthogonalized
    one = merge("tsv_m", base, deltas[:1], name=PROJ)
    torch.testing.assert_close(one, base + deltas[0], rtol=1e-5, atol=1e-5)  # T = 1 keeps everything


def test_robust_svd_retries_with_gesvd_when_the_default_fails(monkeypatch):
    real = torch.linalg.svd
    calls = []

    def flaky(matrix, *args, **kwargs):
        calls.append(1)
        raise torch.linalg.LinAlgError("did not converge")

    matrix = torch.randn(6, 4)
    monkeypatch.setattr(spectral.torch.linalg, "svd", flaky)
    u, s, vh = robust_svd(matrix, "layer.weight")
    monkeypatch.setattr(spectral.torch.linalg, "svd", real)
    assert calls
    torch.testing.assert_close((u * s) @ vh, matrix, rtol=1e-5, atol=1e-5)


def test_robust_svd_names_the_tensor_when_every_solver_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(spectral.torch.linalg, "svd", broken)
    monkeypatch.setattr(
        spectral, "_gesvd_float64", lambda m: (_ for _ in ()).throw(ValueError("gesvd failed"))
    )
    with pytest.raises(MergeError, match="model.layers.3.mlp.up_proj.weight"):
        robust_svd(torch.randn(4, 4), "model.layers.3.mlp.up_proj.weight")
