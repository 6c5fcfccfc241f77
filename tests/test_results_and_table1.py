"""Results store + Table 1 from synthetic results (no models needed: report/ reads results only)."""

import sqlite3

from repro.plan import Job, Plan
from repro.report.results_view import collect
from repro.report.table1 import build_table1
from repro.report.table_text import to_csv, to_latex, to_markdown, write_table
from repro.results import ResultRecord, ResultsStore


def _plan():
    jobs = [Job("b", "base", "m", 0)]
    jobs += [Job(f"s{i}", "single", "m", 1, (i,)) for i in (1, 2, 3, 4)]
    jobs += [Job(f"ta{k}", "merge", "m", 2, s, "task_arithmetic", "TA", {}) for k, s in enumerate([(1, 2), (3, 4)])]
    jobs += [Job("ta4", "merge", "m", 4, (1, 2, 3, 4), "task_arithmetic", "TA", {})]
    return Plan("t", "f" * 64, 0, {"m": {2: [(1, 2), (3, 4)], 4: [(1, 2, 3, 4)]}}, tuple(jobs))


def _record(job, average):
    return {"job": job.to_json(), "config": {"name": "t", "hash": "f" * 64}, "merge": None,
            "scores": [{"task": "x", "metric": "acc", "value": average, "stderr": 0.01, "n_shot": 0}],
            "average": average, "finished_at": "2026-01-01T00:00:00+00:00"}


def test_table1_values_and_formats(tmp_path):
    plan = _plan()
    store = ResultsStore(tmp_path)
    averages = {"b": 0.50, "s1": 0.49, "s2": 0.52, "s3": 0.48, "s4": 0.47, "ta0": 0.51, "ta1": 0.495, "ta4": 0.53}
    for job in plan.jobs:
        store.write_result(ResultRecord.from_json(_record(job, averages[job.id])))
    table = build_table1(collect(plan, store))
    assert table.headers == ["Model", "Method", "Base", "n=1 (4)", "n=2 (2)", "n=4 (1)"]
    # n=1: 1 of 4 singles beats 50.0; mean delta = (-1 + 2 - 2 - 3) / 4 = -1.00 points
    # n=2: 1 of 2 beats; mean delta = (1 - 0.5) / 2 = +0.25; n=4: 100 / +3.00
    assert table.rows == [["m", "TA", "50.0", "25 / -1.00", "50 / +0.25", "100 / +3.00"]]
    md = to_markdown(table)
    assert "| m | TA | 50.0 | 25 / -1.00 | 50 / +0.25 | 100 / +3.00 |" in md
    assert to_csv(table).splitlines()[1] == "m,TA,50.0,25 / -1.00,50 / +0.25,100 / +3.00"
    assert r"\begin{tabular}" in to_latex(table) and "$n=2$ (2)" in to_latex(table)
    paths = write_table(table, tmp_path / "out", stem="table1")
    assert [p.name for p in paths] == ["table1.md", "table1.csv", "table1.tex"]


def test_incomplete_cells_are_marked(tmp_path):
    plan = _plan()
    store = ResultsStore(tmp_path)
    for job in plan.jobs[:6]:  # base, 4 singles, one of the two n=2 merges
        store.write_result(ResultRecord.from_json(_record(job, 0.5 + 0.01 * len(job.id))))
    table = build_table1(collect(plan, store))
    assert table.rows[0][4].endswith("*") and table.rows[0][5] == "–"


def test_store_ignores_temp_files_and_builds_index(tmp_path):
    plan = _plan()
    store = ResultsStore(tmp_path)
    store.write_result(ResultRecord.from_json(_record(plan.jobs[0], 0.5)))
    (store.results_dir / ".s1.json.123.tmp").write_text("{half")
    assert store.finished_ids() == {"b"}
    store.write_failure(plan.jobs[1].to_json(), "boom")
    assert store.failed_ids() == {"s1"}
    store.write_result(ResultRecord.from_json(_record(plan.jobs[1], 0.4)))
    assert store.failed_ids() == set()
    con = sqlite3.connect(store.rebuild_index())
    assert con.execute("select job_id, average from results order by job_id").fetchall() == [("b", 0.5), ("s1", 0.4)]
    assert con.execute("select task, metric, value from scores where job_id='b'").fetchall() == [("x", "acc", 0.5)]


def test_table2_compares_with_the_best_single_checkpoint(tmp_path):
    from repro.report.table1 import build_table2

    plan = _plan()
    store = ResultsStore(tmp_path)
    averages = {"b": 0.50, "s1": 0.49, "s2": 0.52, "s3": 0.48, "s4": 0.47, "ta0": 0.53, "ta1": 0.495, "ta4": 0.51}
    for job in plan.jobs:
        store.write_result(ResultRecord.from_json(_record(job, averages[job.id])))
    table = build_table2(collect(plan, store))
    assert table.headers[2] == "Best FT"
    # best single = 52.0; n=1: none beats it, mean delta (-3 + 0 - 4 - 5)/4 = -3.00; n=2: (1 - 2.5)/2 = -0.75
    assert table.rows == [["m", "TA", "52.0", "0 / -3.00", "50 / -0.75", "0 / -1.00"]]


def test_figures_render_from_results_only(tmp_path):
    from repro.report.artifacts import load_records
    from repro.report.figures import main_figures

    plan = _plan()
    store = ResultsStore(tmp_path)
    for job in plan.jobs:
        record = _record(job, 0.5 + 0.01 * len(job.id))
        record["scores"][0]["primary"] = True
        if job.kind == "merge":
            record["merge"] = {"task_vector_l2": 1.0 + len(job.subset)}
        store.write_result(ResultRecord.from_json(record))
    figures = main_figures(plan, load_records(plan, store), tmp_path / "figs", table1_labels=["TA"], table3_labels=[],
                           all_labels=["TA"], tasks=["x"])
    paths = [path for figure in figures for path in figure.files]
    assert [p.name for p in paths] == ["fig03_accuracy_vs_n.png", "fig03_accuracy_vs_n.pdf",
                                       "fig04_task_vector_norm.png", "fig04_task_vector_norm.pdf",
                                       "fig07_taskwise_m.png", "fig07_taskwise_m.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:4] == b"%PDF"
    assert [f.n_results for f in figures] == [8, 3, 8]
