"""What a report renders: one Artifact per table or figure, with what the static page shows about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.results import ResultRecord


@dataclass
class Artifact:
    key: str  # file stem, e.g. "table1" or "fig03_accuracy_vs_n"
    title: str  # e.g. "Figure 3: average accuracy vs. n"
    kind: str  # "table" | "figure"
    files: list[Path]
    n_results: int  # stored results behind it
    notes: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None  # (headers, rows) of a table, for the page


def load_records(plan, store) -> dict[str, ResultRecord]:
    """Every finished result of the plan's jobs, by job id (read once)."""
    finished = store.finished_ids()
    return {job.id: store.read_result(job.id) for job in plan.jobs if job.id in finished}
