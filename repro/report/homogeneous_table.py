"""Appendix E (Figures 27-28) as a table: homogeneous vs. mixed-domain merges, per base and method.

Rows: base x method. Columns: for every (experiment, suite) pair of the config, the suite's average
accuracy (unweighted mean of its tasks, in %) of that experiment's merge; the base model's scores on the
same suites come first as the reference. A cell without a result yet shows `–`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.plan import JobKind, Plan
from repro.results import ResultsStore

MISSING = "–"


@dataclass(frozen=True)
class HomogeneousTable:
    headers: list[str]
    rows: list[list[str]]


def build_homogeneous_table(plan: Plan, store: ResultsStore) -> HomogeneousTable:
    jobs = plan.homogeneous_jobs()
    finished = store.finished_ids()
    columns: list[tuple[str, str]] = []  # (experiment, suite)
    for job in jobs:
        if job.kind is JobKind.HOMOGENEOUS:
            for suite in job.suites:
                if (job.part_of.name, suite) not in columns:
                    columns.append((job.part_of.name, suite))
    suites = list(dict.fromkeys(suite for _, suite in columns))
    headers = ["Model", "Method"] + [f"base: {s}" for s in suites] + [f"{e}: {s}" for e, s in columns]

    def averages(job) -> dict[str, float]:
        return store.read_result(job.id).suite_averages if job.id in finished else {}

    def fmt(value: float | None) -> str:
        return MISSING if value is None else f"{100 * value:.1f}"

    rows = []
    for base in dict.fromkeys(j.base for j in jobs):
        base_job = next((j for j in jobs if j.base == base and j.kind is JobKind.BASE), None)
        base_scores = averages(base_job) if base_job else {}
        labels = list(dict.fromkeys(j.label for j in jobs if j.base == base and j.kind is JobKind.HOMOGENEOUS))
        for i, label in enumerate(labels):
            cells = [fmt(base_scores.get(s)) for s in suites]
            for experiment, suite in columns:
                job = next((j for j in jobs if j.base == base and j.label == label and j.part_of.name == experiment), None)
                cells.append(fmt(averages(job).get(suite)) if job else MISSING)
            rows.append([base if i == 0 else "", label, *cells])
    return HomogeneousTable(headers, rows)


def write_homogeneous_table(table: HomogeneousTable, out_dir: Path) -> list[Path]:
    md = ["| " + " | ".join(table.headers) + " |", "|" + "|".join("---" for _ in table.headers) + "|"]
    md += ["| " + " | ".join(row) + " |" for row in table.rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return [
        atomic_write_text(out_dir / "appendix_e.md", "\n".join(md) + "\n"),
        atomic_write_text(out_dir / "appendix_e.csv", buffer.getvalue()),
    ]
