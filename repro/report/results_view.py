"""A read-only view of one experiment's results, grouped the way the paper's tables need them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from repro.plan import JobKind, Plan
from repro.results import ResultsStore


@dataclass
class BaseResults:
    base: str
    base_average: float | None = None
    singles: dict[int, float] = field(default_factory=dict)  # checkpoint index -> average accuracy
    merges: dict[str, dict[int, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))


@dataclass
class ExperimentResults:
    """Averages of every finished job, plus how many the plan expects (to mark incomplete cells)."""

    bases: dict[str, BaseResults]
    method_labels: list[str]
    sizes: list[int]
    planned_singles: dict[str, int]
    planned_merges: dict[tuple[str, str, int], int]  # (base, label, n) -> subsets planned
    config_hash: str
    n_results: int


def collect(plan: Plan, store: ResultsStore) -> ExperimentResults:
    """Group finished results of `plan`'s jobs; results of jobs not in the plan are ignored."""
    grid = plan.main_grid()  # the appendices' jobs are reported separately
    jobs = {job.id: job for job in grid}
    bases = {job.base: BaseResults(job.base) for job in grid}
    labels: list[str] = []
    sizes: set[int] = set()
    planned_singles: dict[str, int] = defaultdict(int)
    planned_merges: dict[tuple[str, str, int], int] = defaultdict(int)
    for job in grid:
        if job.kind is JobKind.SINGLE:
            planned_singles[job.base] += 1
        elif job.kind is JobKind.MERGE:
            planned_merges[(job.base, job.label, job.n)] += 1
            sizes.add(job.n)
            if job.label not in labels:
                labels.append(job.label)
    n_results = 0
    for job_id in sorted(store.finished_ids() & jobs.keys()):
        job = jobs[job_id]
        average = store.read_result(job_id).average
        n_results += 1
        entry = bases[job.base]
        if job.kind is JobKind.BASE:
            entry.base_average = average
        elif job.kind is JobKind.SINGLE:
            entry.singles[job.subset[0]] = average
        else:
            entry.merges[job.label][job.n].append(average)
    return ExperimentResults(
        bases, labels, sorted(sizes), dict(planned_singles), dict(planned_merges), plan.config_hash, n_results
    )
