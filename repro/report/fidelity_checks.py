"""Two checks of a run against what the paper's text says of its own merges, from stored results only.

- Subspace Boosting on rank-deficient updates: every TA+SB / TIES+SB merge records how many projection
  matrices had numerically-zero singular values raised by the boost (`merge.subspace_boosting` of the job
  record; tolerance sigma_max * max(rows, cols) * eps(float32)). Such a matrix's boosted update depends on
  the singular vectors the SVD picked for the null space, i.e. on the SVD library and device. Counted per
  table: how many of its merges are affected.
- Figure 4's ordering (Section 3.3): Task Arithmetic, TA + SB, TIES, TIES + SB and Model Stock stay "below
  50" in task-vector norm for all n, Iso-C and TSV-M far above. Checked per base and n on the mean norm
  over subsets of each method configuration: every configuration of the first group below every one of
  the second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from repro.method_catalog import builtin_methods_where
from repro.plan import JobKind
from repro.results import ResultRecord

# from the methods' traits (`repro.method_catalog`): which merges record a boost count, Figure 4's groups
SB_METHODS = builtin_methods_where(lambda traits: traits.records_boosts)
LOW_NORM_METHODS = builtin_methods_where(lambda traits: traits.paper_norm_group == "low")
HIGH_NORM_METHODS = builtin_methods_where(lambda traits: traits.paper_norm_group == "high")
NULL_TOLERANCE_TEXT = "sigma_max * max(rows, cols) * eps(float32)"


@dataclass(frozen=True)
class BoostingCount:
    """One table's Subspace Boosting merges: finished, affected (>= 1 raised null direction), not counted
    (a record written before the count existed), and the projection matrices affected over all of them."""

    table: str
    merges: int
    affected: int
    unrecorded: int
    matrices: int
    affected_matrices: int

    def sentence(self) -> str:
        text = (f"{self.table}: {self.affected} of {self.merges} Subspace Boosting merges raised numerically-zero "
                f"singular values ({self.affected_matrices} of {self.matrices} projection matrices)")
        if self.unrecorded:
            text += f"; {self.unrecorded} merge records predate the count"
        return text


def boosting_counts(plan, records: Mapping[str, ResultRecord], tables: Mapping[str, Sequence[str]]) -> list[BoostingCount]:
    """Per table (name -> the method labels it shows), the count over its finished SB merges; tables
    without SB merges are left out. Appendix sweeps (jobs outside the tables) are counted as "other"."""
    in_tables = {label for labels in tables.values() for label in labels}
    groups = {table: plan.grid_merges(labels) for table, labels in tables.items()}
    groups["other merges"] = [j for j in plan.of_kind(JobKind.MERGE) if not j.in_main_grid or j.label not in in_tables]
    out = []
    for table, jobs in groups.items():
        merges = affected = unrecorded = matrices = affected_matrices = 0
        for job in jobs:
            record = records.get(job.id)
            if job.method not in SB_METHODS or record is None:
                continue
            merges += 1
            count = record.subspace_boosting
            if not count:
                unrecorded += 1
                continue
            matrices += int(count.get("projection_matrices", 0))
            affected_matrices += int(count.get("raised_null", 0))
            affected += int(count.get("raised_null", 0) > 0)
        if merges:
            out.append(BoostingCount(table, merges, affected, unrecorded, matrices, affected_matrices))
    return out


@dataclass(frozen=True)
class NormOrder:
    """Figure 4 at one (base, n): the largest mean norm of the low group and the smallest of the high one."""

    base: str
    n: int
    low: tuple[str, float]
    high: tuple[str, float]

    @property
    def holds(self) -> bool:
        return self.low[1] < self.high[1]


def norm_ordering(plan, records: Mapping[str, ResultRecord], labels: Sequence[str] | None = None) -> list[NormOrder]:
    """One NormOrder per (base, n) where both groups have results (mean over subsets per configuration);
    `labels`: the method configurations Figure 4 shows (None: every configuration of the main grid)."""
    norms: dict[tuple[str, int, str, str], list[float]] = {}
    for job in plan.grid_merges(labels):
        record = records.get(job.id)
        value = record.task_vector_l2 if record is not None else None
        if value is not None:
            norms.setdefault((job.base, job.n, job.method, job.label or job.method), []).append(float(value))
    out = []
    for base, n in sorted({(b, n) for b, n, _, _ in norms}, key=lambda k: (k[0], k[1])):
        means = {}
        for (b, m, method, label), values in norms.items():
            if (b, m) == (base, n):
                means[(method, label)] = sum(values) / len(values)
        low = [(label, v) for (method, label), v in means.items() if method in LOW_NORM_METHODS]
        high = [(label, v) for (method, label), v in means.items() if method in HIGH_NORM_METHODS]
        if low and high:
            out.append(NormOrder(base, n, max(low, key=lambda x: x[1]), min(high, key=lambda x: x[1])))
    return out


def ordering_summary(orders: Sequence[NormOrder]) -> str:
    """One sentence: whether the paper's Figure 4 ordering holds at every (base, n) of the run."""
    if not orders:
        return ("Figure 4 ordering: not checked (the run has no task-vector norms of both TA/TIES/Model Stock "
                "(with or without SB) and Iso-C/TSV-M at the same base and n)")
    broken = [o for o in orders if not o.holds]
    if not broken:
        return (f"Figure 4 ordering holds at all {len(orders)} (base, n) points: TA, TA + SB, TIES, TIES + SB and "
                "Model Stock stay below Iso-C and TSV-M in task-vector norm, as the paper reports")
    first = broken[0]
    return (f"Figure 4 ordering does NOT hold at {len(broken)} of {len(orders)} (base, n) points; first: "
            f"{first.base} n = {first.n}, {first.low[0]} {first.low[1]:.3g} >= {first.high[0]} {first.high[1]:.3g}")
