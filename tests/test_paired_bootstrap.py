"""Paired bootstrap against exact enumeration of every resample on small constructed cases."""

import itertools

import numpy as np
import pytest

from repro.report.ci_tables import bootstrap_experiment, build_ci_cells, write_ci_tables
from repro.report.paired_bootstrap import accuracy_replicates, cell_bootstrap, paired_bootstrap
from tests.item_results import build_plan, write_store

# Two tasks: 3 and 2 items. Model and reference flags on the same items.
MODEL = [np.array([1, 1, 0]), np.array([1, 0])]
REFERENCE = [np.array([0, 1, 0]), np.array([1, 1])]


def _exact_distribution(model, reference):
    """Every equally likely resample (items drawn with replacement within each task), enumerated."""
    per_task = []
    for m, r in zip(model, reference, strict=True):
        n = len(m)
        per_task.append([np.mean([m[i] - r[i] for i in draw]) for draw in itertools.product(range(n), repeat=n)])
    return np.array([np.mean(combo) for combo in itertools.product(*per_task)])


def _cdf_distance(sample, exact):
    atoms = np.unique(np.concatenate([sample, exact]))
    f_sample = np.searchsorted(np.sort(sample), atoms + 1e-12, side="right") / len(sample)
    f_exact = np.searchsorted(np.sort(exact), atoms + 1e-12, side="right") / len(exact)
    return np.max(np.abs(f_sample - f_exact))


@pytest.mark.parametrize("method", ["patterns", "items"])
def test_item_bootstrap_matches_exact_enumeration(method):
    exact = _exact_distribution(MODEL, REFERENCE)  # 3^3 * 2^2 = 108 resamples
    flags = [np.stack([m, r], axis=1) for m, r in zip(MODEL, REFERENCE, strict=True)]
    observed, replicates = accuracy_replicates(flags, resamples=40_000, seed=3, method=method)
    delta = replicates[:, 0] - replicates[:, 1]
    assert observed[0] - observed[1] == pytest.approx((1 / 3 + -1 / 2) / 2)
    assert delta.mean() == pytest.approx(exact.mean(), abs=0.004)
    assert delta.std() == pytest.approx(exact.std(), rel=0.02)
    assert _cdf_distance(delta, exact) < 0.01


def test_paired_interval_is_exact_quantiles_and_seeded():
    exact = _exact_distribution(MODEL, REFERENCE)
    observed, lo, hi = paired_bootstrap(REFERENCE, MODEL, resamples=40_000, seed=1)
    assert observed == pytest.approx(-1 / 12)
    # The exact 2.5% / 97.5% quantiles of the enumerated distribution, to the nearest atom.
    atoms = np.unique(exact)
    assert lo == pytest.approx(atoms[np.argmin(np.abs(atoms - np.quantile(exact, 0.025)))], abs=0.09)
    assert hi == pytest.approx(atoms[np.argmin(np.abs(atoms - np.quantile(exact, 0.975)))], abs=0.09)
    assert paired_bootstrap(REFERENCE, MODEL, resamples=2000, seed=5) == paired_bootstrap(
        REFERENCE, MODEL, resamples=2000, seed=5)


def test_pairing_removes_shared_item_noise():
    """Two models identical except on one item: the paired interval is tight, whatever the item noise."""
    rng = np.random.default_rng(0)
    ref = [(rng.random(200) < 0.5).astype(int)]
    model = [ref[0].copy()]
    model[0][0] = 1 - model[0][0]
    _, lo, hi = paired_bootstrap(ref, model, resamples=5000, seed=0)
    assert hi - lo <= 0.02  # the unpaired interval would be about 0.19 wide


def test_cell_bootstrap_matches_exact_hierarchical_enumeration():
    """Cell of two models (subsets) on one task of 3 items: models drawn with replacement, items shared."""
    ref = np.array([1, 0, 0])
    models = [np.array([1, 1, 0]), np.array([0, 0, 1])]
    exact = []
    for pick in itertools.product(range(2), repeat=2):  # subset draw
        for draw in itertools.product(range(3), repeat=3):  # item draw, shared by models and reference
            exact.append(np.mean([np.mean([models[j][i] - ref[i] for i in draw]) for j in pick]))
    exact = np.array(exact)
    flags = [np.stack([*models, ref], axis=1)]
    observed, replicates = accuracy_replicates(flags, resamples=60_000, seed=2)
    cb = cell_bootstrap(observed, replicates, [0, 1], 2, seed=4)
    assert cb.observed.tolist() == pytest.approx([1 / 3, 0.0])
    assert cb.cell_mean.mean() == pytest.approx(exact.mean(), abs=0.005)
    assert cb.cell_mean.std() == pytest.approx(exact.std(), rel=0.03)
    assert _cdf_distance(cb.cell_mean, exact) < 0.01


def test_ci_tables_render_and_point_values_match_table1(tmp_path):
    plan = build_plan()
    store = write_store(tmp_path / "runs", plan, lambda job: 0.55 + 0.05 * (job.kind == "merge") * job.n / 4)
    eb = bootstrap_experiment(plan, store, resamples=2000, seed=0)
    cells = build_ci_cells(plan, eb, "table1", ["task_arithmetic"])
    m1_n4 = next(c for c in cells if c.base == "m1" and c.n == 4)
    ids = [j.id for j in plan.jobs if j.base == "m1" and j.n == 4]
    base = store.read_result("m1-base").average
    deltas = [store.read_result(i).average - base for i in ids]
    assert m1_n4.delta == pytest.approx(100 * np.mean(deltas))
    assert m1_n4.percent == pytest.approx(100 * np.mean([d > 0 for d in deltas]))
    assert m1_n4.delta_low <= m1_n4.delta <= m1_n4.delta_high
    assert 0 <= m1_n4.significant <= m1_n4.models == 3
    assert any(c.base == "Average" for c in cells)
    paths = write_ci_tables(plan, store, tmp_path / "out", resamples=500)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{t}_ci.{s}" for t in ("table1", "table2") for s in ("md", "csv", "tex"))
    assert "[95% interval]" in (tmp_path / "out" / "table1_ci.md").read_text()
    # Table 2 at n = 1: the best checkpoint never beats itself.
    t2 = build_ci_cells(plan, eb, "table2", ["task_arithmetic"])
    assert all(c.percent < 100 for c in t2 if c.n == 1)


def test_unpaired_items_are_one_clear_error(tmp_path):
    from repro.evaluate.outcome import write_items
    from repro.report.item_data import ItemDataError, load_item_matrix

    plan = build_plan(bases=("m1",), sizes=(2,), subsets=1)
    store = write_store(tmp_path, plan, lambda job: 0.5)
    write_items(store.items_path("m1-s1"), {"alpha": [("0", 1)], "beta": [("0", 0)], "gamma": [("0", 1)]})
    with pytest.raises(ItemDataError, match="m1-s1.*other items"):
        load_item_matrix(store, ["m1-base", "m1-s1"])


def test_report_layer_statistics_import_no_torch_merge_or_evaluate():
    import subprocess
    import sys

    code = ("import sys\n"
            "import repro.report.ci_tables, repro.report.verify_run, repro.report.published_checks\n"
            "import repro.report.published_text, repro.report.item_data, repro.report.paired_bootstrap\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('repro.merge', 'repro.evaluate'))]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_replicates_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(7)
    flags = [(rng.random((n, 4)) < 0.6).astype(np.uint8) for n in (30, 200, 55)]
    one = accuracy_replicates(flags, resamples=3000, seed=11, threads=1)
    many = accuracy_replicates(flags, resamples=3000, seed=11, threads=3)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
