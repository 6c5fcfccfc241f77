"""`repro verify --run CONFIG`: a run's regenerated Tables 1-3 against the published cells.

For every published cell (reference/tables.csv) the run's cell of the same base, method and n (names mapped
by reference/names.yaml) is computed from stored per-item results with the hierarchical bootstrap of
repro.report.ci_tables (subsets and items resampled), and compared under one stated tolerance rule:

    TOLERANCE_RULE (below): the published value must lie in our 95% interval with each side widened by
    a factor sqrt(2) -- the paper drew its own random subsets, and the difference of two independent draws of
    the same protocol spreads sqrt(2) times one draw's spread -- plus half a unit of the published rounding
    (0.005 points for deltas, 0.5 for percentages). A cell agrees when both its percentage and its delta do.

Cells the run does not have (base, method or n not in the config, or no finished result yet) are listed
as "not run", never as disagreement; a cell with fewer results than planned is compared and marked partial.
An "Average" row is compared only when the run covers every base the paper averages.

Two checks of what the paper's text says follow (`repro.report.fidelity_checks`): how many Subspace
Boosting merges of each table raised numerically-zero singular values (results that depend on the SVD
library), and whether Figure 4's task-vector-norm ordering holds at every base and n of the run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from repro.facts.reference import AVERAGE, Reference, ReferenceCell, display_path
from repro.plan import JobKind
from repro.report.artifacts import load_records
from repro.report.ci_tables import TABLE_REFERENCE, CellCI, bootstrap_experiment, build_ci_cells
from repro.report.fidelity_checks import NULL_TOLERANCE_TEXT, boosting_counts, norm_ordering, ordering_summary

WIDEN = math.sqrt(2)
ROUNDING = {"percentage": 0.5, "delta": 0.005}
TOLERANCE_RULE = (
    "A published value agrees when it lies inside our 95% interval with each side widened by sqrt(2) (the paper "
    "drew its own subsets; two independent draws differ by sqrt(2) times one draw's spread), plus half a unit "
    "of its printed rounding (0.5 for percentages, 0.005 for deltas). Our intervals: hierarchical bootstrap, "
    "subsets redrawn with replacement and items redrawn within each task (shared by all models). A cell "
    "agrees when both its percentage and its delta agree."
)


@dataclass(frozen=True)
class CellComparison:
    published: ReferenceCell
    ours: CellCI | None
    status: str  # "agree" | "disagree" | "not run"
    detail: str = ""

    @property
    def partial(self) -> bool:
        return self.ours is not None and self.ours.models < self.ours.planned


def _within(value: float, point: float, low: float, high: float, rounding: float) -> bool:
    lo = point - WIDEN * (point - low) - rounding
    hi = point + WIDEN * (high - point) + rounding
    return lo - 1e-12 <= value <= hi + 1e-12


def compare_cell(published: ReferenceCell, ours: CellCI | None) -> CellComparison:
    if ours is None or ours.models == 0:
        return CellComparison(published, None, "not run")
    pct_ok = _within(published.value("percentage"), ours.percent, ours.percent_low, ours.percent_high,
                     ROUNDING["percentage"])
    delta_ok = _within(published.value("delta"), ours.delta, ours.delta_low, ours.delta_high, ROUNDING["delta"])
    off = [name for name, ok in (("percentage", pct_ok), ("delta", delta_ok)) if not ok]
    return CellComparison(published, ours, "agree" if not off else "disagree",
                          "" if not off else "outside: " + ", ".join(off))


@dataclass
class RunComparison:
    config: str
    cells: list[CellComparison]
    resamples: int
    seed: int
    provenance: str = ""
    boosting: list = field(default_factory=list)  # fidelity_checks.BoostingCount per table
    norm_orders: list = field(default_factory=list)  # fidelity_checks.NormOrder per (base, n)

    def counts(self) -> Counter:
        return Counter(c.status for c in self.cells)

    def summary_line(self) -> str:
        counts = self.counts()
        return (f"verify --run {self.config}: {len(self.cells)} published cells: {counts['agree']} agree, "
                f"{counts['disagree']} disagree, {counts['not run']} not run")

    def per_row(self) -> list[tuple[str, str, str, Counter]]:
        rows: dict = {}
        for c in self.cells:
            key = (c.published.table, c.published.model, c.published.method)
            rows.setdefault(key, Counter())[c.status] += 1
        return [(*key, counter) for key, counter in rows.items()]


def _run_cells(plan, eb, reference: Reference, table: str, loaded) -> dict:
    """(paper model, paper method, n) -> our CellCI for one table."""
    names = reference.names
    wanted = {names.methods.get(c.method, c.method) for c in reference.cells if c.table == table}
    cells = build_ci_cells(plan, eb, table, sorted(wanted)) if eb is not None else []
    method_of_label = {j.label: j.method for j in plan.of_kind(JobKind.MERGE)}
    out = {}
    for cell in cells:
        model = AVERAGE if cell.base == AVERAGE else names.model_for_base(cell.base)
        method = names.method_for(method_of_label.get(cell.label, ""), cell.label)
        out.setdefault((model, method, cell.n), cell)  # the first configuration of a method stands for it
    return out


def compare_run(plan, store, reference: Reference, *, loaded=None, resamples: int = 10_000,
                seed: int = 0) -> RunComparison:
    finished = store.finished_ids() & {j.id for j in plan.main_grid()}
    eb = bootstrap_experiment(plan, store, resamples=resamples, seed=seed) if finished else None
    bases = {j.base for j in plan.main_grid()}
    paper_models = {c.model for c in reference.cells if c.model != AVERAGE}
    covers_all = {reference.names.models.get(m, m) for m in paper_models} <= bases
    comparisons = []
    for table in sorted({c.table for c in reference.cells}):
        if table not in TABLE_REFERENCE:
            continue
        ours = _run_cells(plan, eb, reference, table, loaded)
        for cell in (c for c in reference.cells if c.table == table):
            mine = ours.get((cell.model, cell.method, cell.n))
            if cell.model == AVERAGE and not covers_all:
                mine = None
            comparisons.append(compare_cell(cell, mine))
    provenance = (f"Run `{plan.config_name}` (config hash {plan.config_hash[:12]}): "
                  f"{0 if eb is None else len(eb.columns)} finished results with per-item data; reference "
                  f"`{display_path(reference.root)}` ({len(reference.cells)} cells).")
    boosting, orders = _fidelity(plan, store, loaded)
    return RunComparison(plan.config_name, comparisons, resamples, seed, provenance, boosting, orders)


def _fidelity(plan, store, loaded) -> tuple[list, list]:
    records = load_records(plan, store)
    if loaded is not None:
        tables = {table: loaded.report_labels(table) for table in ("table1", "table2", "table3")}
        shown = list(dict.fromkeys(tables["table1"] + tables["table3"]))
    else:
        tables, shown = {}, None
    return boosting_counts(plan, records, tables), norm_ordering(plan, records, shown)


def _ours_text(c: CellComparison) -> str:
    if c.ours is None:
        return "not run"
    o = c.ours
    partial = f" (partial: {o.models}/{o.planned})" if c.partial else ""
    return (f"{o.percent:.0f} [{o.percent_low:.0f}, {o.percent_high:.0f}] / {o.delta:+.2f} "
            f"[{o.delta_low:+.2f}, {o.delta_high:+.2f}]{partial}")


def render_comparison(comparison: RunComparison) -> str:
    counts = comparison.counts()
    lines = [f"# `{comparison.config}` against the published Tables 1-3", "", comparison.summary_line(), "",
             comparison.provenance, "",
             "## Tolerance rule", "", TOLERANCE_RULE + f" Bootstrap: {comparison.resamples} resamples, seed "
             f"{comparison.seed}.", "", "## Summary per table, base and method", "",
             "| table | model | method | agree | disagree | not run |", "|---|---|---|---|---|---|"]
    for table, model, method, counter in comparison.per_row():
        lines.append(f"| {table} | {model} | {method} | {counter['agree']} | {counter['disagree']} | "
                     f"{counter['not run']} |")
    lines += ["", f"Totals: {counts['agree']} agree, {counts['disagree']} disagree, {counts['not run']} not run.", "",
              "## Cells", "", "| table | model | method | n | published | ours [95% interval] | agree? |",
              "|---|---|---|---|---|---|---|"]
    for c in comparison.cells:
        p = c.published
        verdict = {"agree": "yes", "disagree": f"**no** ({c.detail})", "not run": "not run"}[c.status]
        lines.append(f"| {p.table} | {p.model} | {p.method} | {p.n} | {p.percentage} / {p.delta} | "
                     f"{_ours_text(c)} | {verdict} |")
    return "\n".join(lines + _fidelity_lines(comparison)) + "\n"


def _fidelity_lines(comparison: RunComparison) -> list[str]:
    lines = ["", "## Subspace Boosting on rank-deficient updates", "",
             "A boosted projection matrix whose raised singular values include numerically-zero ones (at most "
             f"{NULL_TOLERANCE_TEXT}) takes null-space directions the SVD picks arbitrarily: its merged tensor "
             "depends on the SVD library and device. Merges affected, per table:", ""]
    if comparison.boosting:
        lines += [f"- {count.sentence()}" for count in comparison.boosting]
    else:
        lines.append("- no finished Subspace Boosting merges in this run")
    lines += ["", "## Figure 4 ordering", "", ordering_summary(comparison.norm_orders) + "."]
    if comparison.norm_orders:
        lines += ["", "| base | n | largest TA/TIES/Model Stock (+SB) norm | smallest Iso-C/TSV-M norm | holds |",
                  "|---|---|---|---|---|"]
        for o in comparison.norm_orders:
            lines.append(f"| {o.base} | {o.n} | {o.low[0]} {o.low[1]:.4g} | {o.high[0]} {o.high[1]:.4g} | "
                         f"{'yes' if o.holds else '**no**'} |")
    return lines
