"""Subspace Boosting on rank-deficient updates: beta = 1 is the identity on every path, numerically-zero
singular values raised by the boost are counted and recorded, `keep_null` makes the result well defined,
beta = 0 raises every singular value to the largest."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from mergekit.merge_methods import merge_tensors  # noqa: E402

from repro.merge import merge_checkpoints  # noqa: E402
from repro.merge.grid import merge_grid  # noqa: E402
from repro.merge.mergekit_plugin import register_methods  # noqa: E402
from repro.merge.methods.spectral import (  # noqa: E402
    boost_spectrum,
    boost_spectrum_outcome,
    cutoff_index,
    null_tolerance,
)

register_methods()

PROJ = "model.layers.0.mlp.down_proj.weight"


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def world12(request, tmp_path_factory):
    """A tiny family with 12 fine-tunes (the paper's largest n), per architecture."""
    from repro.worlds.tiny import build_tiny_world

    seed = {"llama": 21, "qwen3": 22}[request.param]
    return build_tiny_world(tmp_path_factory.mktemp(f"sb12-{request.param}"), request.param, n_checkpoints=12,
                            seed=seed)


def low_rank(rows=12, cols=8, rank=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, rank, generator=g) @ torch.randn(rank, cols, generator=g)


def test_beta_one_returns_a_rank_deficient_matrix_bit_for_bit():
    # cumsum / total reaches 1.0 one index early when the last singular values are ~0: the cutoff must
    # not depend on that rounding
    for seed in range(20):
        matrix = low_rank(seed=seed)
        out, outcome = boost_spectrum_outcome(matrix, 1.0)
        assert out is matrix and not outcome.boosted and not outcome.raised_null
        assert cutoff_index(torch.linalg.svdvals(matrix), 1.0) == 7


def test_raised_null_directions_are_counted_and_keep_null_makes_the_result_well_defined():
    matrix = low_rank(rows=16, cols=10, rank=4, seed=3)
    s = torch.linalg.svdvals(matrix)
    tol = null_tolerance(s, tuple(matrix.shape))
    assert int((s <= tol).sum()) == 6  # the 6 null directions are numerically zero by the stated tolerance
    out, outcome = boost_spectrum_outcome(matrix, 0.2)
    assert outcome.boosted and outcome.raised_null
    kept, kept_outcome = boost_spectrum_outcome(matrix, 0.2, keep_null=True)
    assert kept_outcome.boosted and not kept_outcome.raised_null
    # well defined: the same matrix transposed gives the same (transposed) result
    kept_t = boost_spectrum(matrix.T.contiguous(), 0.2, keep_null=True)
    torch.testing.assert_close(kept_t.T, kept, rtol=1e-5, atol=1e-5)
    # and its spectrum: the 4 true ones boosted, the null ones still zero
    sv = torch.linalg.svdvals(kept)
    index = cutoff_index(s, 0.2)
    expected = torch.where(s[:4] < s[index], s[index], s[:4])
    torch.testing.assert_close(sv[:4], expected, rtol=1e-5, atol=1e-5)
    assert float(sv[4:].max()) <= 1e-5 * float(sv[0])
    # the authors' reading raises the null ones too: the spectrum is flat below the cutoff
    assert float(torch.linalg.svdvals(out).min()) == pytest.approx(float(s[index]), rel=1e-4)


def test_full_rank_matrix_is_not_flagged_and_keep_null_changes_nothing():
    matrix = torch.randn(12, 8, generator=torch.Generator().manual_seed(5))
    out, outcome = boost_spectrum_outcome(matrix, 0.2)
    kept, kept_outcome = boost_spectrum_outcome(matrix, 0.2, keep_null=True)
    assert outcome.boosted and not outcome.raised_null and not kept_outcome.raised_null
    assert torch.equal(out, kept)


def test_beta_zero_raises_every_singular_value_to_the_largest():
    matrix = torch.randn(12, 8, generator=torch.Generator().manual_seed(6))
    s = torch.linalg.svdvals(matrix)
    out = boost_spectrum(matrix, 0.0)
    torch.testing.assert_close(torch.linalg.svdvals(out), s[0].expand(8), rtol=1e-5, atol=1e-5)


def _merge_tensors(method, tensors, name, **params):
    return merge_tensors(tensors, method, parameters=params, base_index=0, name=name, dtype=torch.float32)


TIES = dict(density=0.1, normalize=True, weight=1.0, **{"lambda": 0.1})


def test_beta_one_is_the_identity_through_mergekit_for_n_1_to_12(world12):
    """mergekit's method interface (the `repro mergekit-yaml` path): every tensor, n = 1..12."""
    from repro.merge.engine import load_state_dict

    base = load_state_dict(world12.base)
    inputs = [load_state_dict(c) for c in world12.checkpoints]
    for n in range(1, 13):
        for name in base:
            tensors = [base[name]] + [state[name] for state in inputs[:n]]
            ties = _merge_tensors("ties", tensors, name, int8_mask=False, **TIES)
            assert torch.equal(ties, _merge_tensors("ties_sb", tensors, name, beta=1.0, **TIES)), (n, name)
            for normalize in (True, False):
                ta = _merge_tensors("task_arithmetic", tensors, name, normalize=normalize, weight=1.0)
                sb = _merge_tensors("task_arithmetic_sb", tensors, name, normalize=normalize, weight=1.0, beta=1.0)
                assert torch.equal(ta, sb), (n, name, normalize)


def test_beta_one_is_the_identity_through_the_engine_and_the_grid_for_n_1_to_12(world12):
    """The streaming engine (in memory and saved) and the grid's one pass, every n = 1..12."""
    base, checkpoints = world12.base, world12.checkpoints
    subsets = [tuple(range(n)) for n in range(1, 13)]
    for method, sb_method, params in (
        ("ties", "ties_sb", {}),
        ("task_arithmetic", "task_arithmetic_sb", {"normalize": True}),
        ("task_arithmetic", "task_arithmetic_sb", {"normalize": False}),
    ):
        plain = merge_grid(base, checkpoints, subsets, method, params)
        boosted = merge_grid(base, checkpoints, subsets, sb_method, {**params, "beta": 1.0})
        for subset, a, b in zip(subsets, plain, boosted, strict=True):
            assert a.state_dict.keys() == b.state_dict.keys()
            assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict), (sb_method, subset)
            assert b.subspace_boosting["boosted"] == 0 and b.subspace_boosting["raised_null"] == 0
        for n in (1, 2, 7, 12):
            single = merge_checkpoints(base, checkpoints[:n], sb_method, {**params, "beta": 1.0}, out_dir=None)
            reference = plain[n - 1].state_dict
            assert all(torch.equal(single.state_dict[k], reference[k]) for k in reference), (sb_method, n)


def test_rank_deficient_ties_sb_merges_are_counted_in_the_record(world12, tmp_path, caplog):
    base, checkpoints = world12.base, world12.checkpoints
    # TIES at density 0.1 with one or two inputs leaves zero rows in the agreeing sum: rank-deficient
    with caplog.at_level("WARNING", logger="repro.merge.engine"):
        result = merge_checkpoints(base, checkpoints[:1], "ties_sb", out_dir=tmp_path / "m")
    count = result.subspace_boosting
    assert count["projection_matrices"] == 14  # 2 layers x 7 projections
    assert 0 < count["raised_null"] <= count["boosted"] <= 14
    assert len(count["raised_null_tensors"]) == count["raised_null"]
    record = json.loads((tmp_path / "m" / "repro_merge.json").read_text())
    assert record["subspace_boosting"] == count
    warnings = [r for r in caplog.records if "numerically-zero" in r.getMessage()]
    assert len(warnings) == 1 and f"{count['raised_null']} of 14" in warnings[0].getMessage()
    kept = merge_checkpoints(base, checkpoints[:1], "ties_sb", {"keep_null": True}, out_dir=None)
    assert kept.subspace_boosting["raised_null"] == 0 and kept.subspace_boosting["boosted"] > 0
    # the grid records the same count per subset
    (grid,) = merge_grid(base, checkpoints, [(0,)], "ties_sb")
    assert grid.subspace_boosting == count


def test_other_methods_record_no_boosting(world12, tmp_path):
    result = merge_checkpoints(world12.base, world12.checkpoints[:2], "ties", out_dir=tmp_path / "t")
    assert result.subspace_boosting is None
    assert "subspace_boosting" not in json.loads((tmp_path / "t" / "repro_merge.json").read_text())


def test_the_job_record_carries_the_count(world12):
    from repro.runner.job_executor import _merge_info

    result = merge_checkpoints(world12.base, world12.checkpoints[:2], "ties_sb", out_dir=None)
    info = _merge_info(result, in_memory=True, device="cpu")
    assert info["subspace_boosting"] == result.subspace_boosting and info["subspace_boosting"]["raised_null"] > 0
    plain = merge_checkpoints(world12.base, world12.checkpoints[:2], "ties", out_dir=None)
    assert "subspace_boosting" not in _merge_info(plain, in_memory=True, device="cpu")
