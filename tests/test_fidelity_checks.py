"""The report's checks of what the paper says of its merges: SB merges with raised null directions counted
per table, Figure 4's norm ordering, both in `verify --run`'s report."""

import csv
import dataclasses

import yaml

from repro.facts.reference import COLUMNS, load_reference
from repro.report.fidelity_checks import boosting_counts, norm_ordering, ordering_summary
from repro.report.verify_run import compare_run, render_comparison
from repro.results import ResultRecord
from tests.item_results import build_plan, write_store

METHODS = (("task_arithmetic", "TA"), ("ties_sb", "TIES + SB"), ("task_arithmetic_sb", "TA + SB"),
           ("iso_c", "Iso-C"), ("tsv_m", "TSV-M"))
NORM = {"task_arithmetic": 2.0, "ties_sb": 1.0, "task_arithmetic_sb": 3.0, "iso_c": 100.0, "tsv_m": 150.0}


def _records(plan, norm=NORM, null=lambda job: job.method == "ties_sb" and job.subset[0] == 1):
    records = {}
    for job in plan.jobs:
        merge = None
        if job.kind == "merge":
            merge = {"task_vector_l2": norm[job.method] * (1 + 0.01 * job.subset[0])}
            if job.method.endswith("_sb"):
                raised = 3 if null(job) else 0
                merge["subspace_boosting"] = {"projection_matrices": 14, "boosted": 14, "raised_null": raised}
        records[job.id] = ResultRecord(job, merge=merge, average=0.5)
    return records


def test_boosting_counts_per_table():
    plan = build_plan(bases=("m1",), methods=METHODS)
    records = _records(plan)
    older = next(j.id for j in plan.jobs if j.method == "task_arithmetic_sb")
    del records[older].merge["subspace_boosting"]  # a record written before the count existed
    tables = {"table1": ["TA"], "table3": ["TA + SB", "TIES + SB", "Iso-C", "TSV-M"]}
    [count] = boosting_counts(plan, records, tables)
    sb_jobs = [j for j in plan.jobs if j.method in ("ties_sb", "task_arithmetic_sb")]
    affected = [j for j in sb_jobs if j.method == "ties_sb" and j.subset[0] == 1]
    assert (count.table, count.merges, count.affected, count.unrecorded) == ("table3", len(sb_jobs), len(affected), 1)
    assert count.matrices == 14 * (len(sb_jobs) - 1) and count.affected_matrices == 3 * len(affected)
    assert f"{len(affected)} of {len(sb_jobs)} Subspace Boosting merges" in count.sentence()
    assert "1 merge records predate the count" in count.sentence()


def test_norm_ordering_holds_and_breaks():
    plan = build_plan(bases=("m1", "m2"), methods=METHODS)
    orders = norm_ordering(plan, _records(plan))
    assert {(o.base, o.n) for o in orders} == {(b, n) for b in ("m1", "m2") for n in (2, 4)}
    assert all(o.holds for o in orders) and ordering_summary(orders).startswith("Figure 4 ordering holds at all 4")
    unnormalized = {**NORM, "task_arithmetic_sb": 120.0}  # an unnormalized boosted sum above Iso-C
    broken = norm_ordering(plan, _records(plan, unnormalized))
    assert not any(o.holds for o in broken)
    text = ordering_summary(broken)
    assert "does NOT hold at 4 of 4" in text and "TA + SB" in text and "Iso-C" in text
    # a configuration Figure 4 does not show is left out
    assert all(o.holds for o in norm_ordering(plan, _records(plan, unnormalized), ["TA", "TIES + SB", "Iso-C"]))
    assert ordering_summary([]).startswith("Figure 4 ordering: not checked")


def test_verify_run_report_states_both(tmp_path):
    plan = build_plan(bases=("m1",), methods=METHODS)
    store = write_store(tmp_path / "runs", plan, lambda job: 0.5)
    for job_id, record in _records(plan).items():
        stored = store.read_result(job_id)
        store.write_result(dataclasses.replace(stored, merge=record.merge))
    with (tmp_path / "tables.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(dict(zip(COLUMNS, ("table1", "PAPER-1", "TA", "Base", "50.0", 2, 15, "50", "+0.10"),
                                 strict=True)))
    (tmp_path / "names.yaml").write_text(yaml.safe_dump({"models": {"PAPER-1": "m1"},
                                                         "methods": {"TA": "task_arithmetic"}}))
    comparison = compare_run(plan, store, load_reference(tmp_path), resamples=200, seed=0)
    text = render_comparison(comparison)
    assert "## Subspace Boosting on rank-deficient updates" in text
    assert "other merges: " in text and "Subspace Boosting merges raised numerically-zero" in text
    assert "Figure 4 ordering holds at all 2 (base, n) points" in text
    assert "| m1 | 2 |" in text


def test_rendered_tables_carry_the_readings_and_figure4_its_ordering(tmp_path):
    import sys
    from pathlib import Path

    from repro.facts.config import load_config
    from repro.plan import build_plan as plan_of
    from repro.report.paper_readings import DELTA_READING, TABLE2_NOT_REPRODUCIBLE
    from repro.report.render_all import render_all
    from repro.results import ResultsStore

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_results import write_synthetic_results

    loaded = load_config(Path(__file__).resolve().parents[1] / "configs/smoke.yaml")
    write_synthetic_results(loaded, tmp_path / "runs")
    artifacts, _ = render_all(loaded, plan_of(loaded), ResultsStore(tmp_path / "runs"), tmp_path / "out")
    notes = {a.key: a.notes for a in artifacts}
    assert DELTA_READING in notes["table1"]
    assert TABLE2_NOT_REPRODUCIBLE in notes["table2"] and DELTA_READING in notes["table2"]
    if "fig04_task_vector_norm" in notes:
        assert any(n.startswith("Figure 4 ordering") for n in notes["fig04_task_vector_norm"])
