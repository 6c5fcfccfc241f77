"""`repro verify --run`: a run against a reference file — agreement, disagreement and not-run cells."""

import csv

import yaml

from repro.facts.reference import COLUMNS, load_reference
from repro.report.ci_tables import bootstrap_experiment, build_ci_cells
from repro.report.verify_run import TOLERANCE_RULE, compare_run, render_comparison
from tests.item_results import build_plan, write_store


def _reference(tmp_path, rows):
    tmp_path.mkdir(parents=True, exist_ok=True)
    with (tmp_path / "tables.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "names.yaml").write_text(yaml.safe_dump(
        {"models": {"PAPER-1": "m1", "PAPER-2": "m2", "PAPER-3": "m3"}, "methods": {"TA": "task_arithmetic"}}))
    return load_reference(tmp_path)


def _row(model, n, percentage, delta, table="table1"):
    return dict(zip(COLUMNS, (table, model, "TA", "Base", "50.0", n, 15, percentage, delta), strict=True))


def test_agreement_disagreement_and_not_run(tmp_path):
    plan = build_plan()
    store = write_store(tmp_path / "runs", plan, lambda job: 0.5 + 0.1 * (job.kind == "merge") * job.n / 4,
                        skip={"m2-task_arithmetic-n4-0", "m2-task_arithmetic-n4-1", "m2-task_arithmetic-n4-2"})
    eb = bootstrap_experiment(plan, store, resamples=2000, seed=0)
    ours = {(c.base, c.n): c for c in build_ci_cells(plan, eb, "table1", ["task_arithmetic"])}
    m1_2, m1_4 = ours[("m1", 2)], ours[("m1", 4)]
    reference = _reference(tmp_path / "ref", [
        _row("PAPER-1", 2, f"{m1_2.percent:.0f}", f"{m1_2.delta:+.2f}"),  # our own value: agrees
        _row("PAPER-1", 4, f"{m1_4.percent:.0f}", f"{m1_4.delta_high + 5:+.2f}"),  # far above: disagrees
        _row("PAPER-2", 4, "100", "+1.00"),  # every m2 n=4 result missing: not run
        _row("PAPER-3", 2, "50", "+0.10"),  # base not in the run: not run
        _row("PAPER-1", 6, "50", "+0.10"),  # size not in the run: not run
        _row("Average", 2, "50", "+0.10"),  # the run covers m1, m2 but not m3: not run
    ])
    comparison = compare_run(plan, store, reference, resamples=2000, seed=0)
    statuses = [(c.published.model, c.published.n, c.status) for c in comparison.cells]
    assert statuses == [("PAPER-1", 2, "agree"), ("PAPER-1", 4, "disagree"), ("PAPER-2", 4, "not run"),
                        ("PAPER-3", 2, "not run"), ("PAPER-1", 6, "not run"), ("Average", 2, "not run")]
    assert comparison.cells[1].detail == "outside: delta"
    assert comparison.summary_line().endswith("6 published cells: 1 agree, 1 disagree, 4 not run")
    text = render_comparison(comparison)
    assert TOLERANCE_RULE in text
    assert "| table1 | PAPER-1 | TA | 1 | 0 | 0 |" not in text  # summary rows count per row
    assert "| table1 | PAPER-1 | TA | 1 | 1 | 1 |" in text
    assert "| table1 | PAPER-2 | TA | 4 | 100 / +1.00 | not run | not run |" in text


def test_partial_cells_are_compared_and_marked(tmp_path):
    plan = build_plan(bases=("m1",))
    store = write_store(tmp_path / "runs", plan, lambda job: 0.6, skip={"m1-task_arithmetic-n2-2"})
    eb = bootstrap_experiment(plan, store, resamples=1000, seed=0)
    ours = {c.n: c for c in build_ci_cells(plan, eb, "table1", ["task_arithmetic"])}
    reference = _reference(tmp_path / "ref", [_row("PAPER-1", 2, f"{ours[2].percent:.0f}", f"{ours[2].delta:+.2f}")])
    comparison = compare_run(plan, store, reference, resamples=1000, seed=0)
    assert comparison.cells[0].status == "agree" and comparison.cells[0].partial
    assert "(partial: 2/3)" in render_comparison(comparison)
