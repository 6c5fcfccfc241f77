"""Companion tables table1_ci / table2_ci / table3_ci: every cell of Tables 1-3 with bootstrap intervals.

From stored per-item results only (numpy; no torch, no models). For every (base, method, n) cell:
- the share of models beating the reference and the mean delta (percentage points), as in Table 1, but
  recomputed from the per-item results (the unweighted mean of the suite's task accuracies);
- a 95% interval for both that reflects the subset draw AND the finite benchmarks: per resample the cell's
  models are redrawn with replacement and the items are redrawn within each task, the same items for all
  models and the reference (repro.report.paired_bootstrap.cell_bootstrap);
- how many of the cell's models have a significant gain: a paired item bootstrap interval of
  (model - reference) entirely above 0.
Items are resampled once for the whole experiment (all bases are evaluated on the same items), so the
"Average" rows' intervals average the bases' resampled cell means resample by resample.
Which methods appear in which table is the config's data (`table_methods`).
"""

from __future__ import annotations

import csv
import io
import zlib
from dataclasses import dataclass

import numpy as np

from repro.atomic_io import atomic_write_text
from repro.method_catalog import default_table_methods
from repro.plan import JobKind
from repro.report.artifacts import Artifact
from repro.report.item_data import ItemDataError, load_item_matrix
from repro.report.paired_bootstrap import (
    DEFAULT_RESAMPLES,
    TIE_TOLERANCE,
    accuracy_replicates,
    cell_bootstrap,
)
from repro.report.table_text import latex_escape

# The paper's tables (each method's `tables` trait in repro.method_catalog); a config's `report:` section
# overrides them.
DEFAULT_TABLE_METHODS = {table: list(methods) for table, methods in default_table_methods().items()}
TABLE_REFERENCE = {"table1": "base", "table2": "best_single", "table3": "base"}


def table_methods(loaded) -> dict[str, list[str]]:
    """table name -> method registry names, from the config's report section when it has one."""
    for attribute in ("report_tables",):
        mapping = getattr(loaded, attribute, None) if loaded is not None else None
        if callable(mapping):
            mapping = mapping()
        if mapping:
            return {str(k): list(v) for k, v in dict(mapping).items()}
    return dict(DEFAULT_TABLE_METHODS)


@dataclass(frozen=True)
class CellCI:
    base: str  # base name or "Average"
    label: str
    n: int
    models: int
    planned: int
    percent: float
    percent_low: float
    percent_high: float
    delta: float  # percentage points
    delta_low: float
    delta_high: float
    significant: int  # models whose paired item interval is above 0

    def text(self) -> str:
        star = "" if self.models >= self.planned else "*"
        return (f"{self.percent:.0f} [{self.percent_low:.0f}, {self.percent_high:.0f}] / "
                f"{self.delta:+.2f} [{self.delta_low:+.2f}, {self.delta_high:+.2f}] · {self.significant}/{self.models}"
                f"{star}")


@dataclass
class ExperimentBootstrap:
    """Item-resampled accuracies of every finished grid job of an experiment, shared resamples."""

    jobs: dict  # job id -> plan Job
    columns: dict[str, int]  # job id -> column
    observed: np.ndarray
    replicates: np.ndarray
    recorded: dict[str, float]  # job id -> recorded average (used to pick the best checkpoint)
    resamples: int
    seed: int
    config_hash: str = ""


def bootstrap_experiment(plan, store, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> ExperimentBootstrap:
    finished = store.finished_ids()
    jobs = {job.id: job for job in plan.main_grid() if job.id in finished}
    order = sorted(jobs, key=lambda i: (jobs[i].base, jobs[i].kind, jobs[i].label or "", jobs[i].n, jobs[i].subset))
    matrix = load_item_matrix(store, order)
    observed, replicates = accuracy_replicates(matrix.flags, resamples=resamples, seed=seed)
    recorded = {job_id: store.read_result(job_id).average for job_id in order}
    return ExperimentBootstrap(jobs, {j: i for i, j in enumerate(order)}, observed, replicates, recorded,
                               resamples, seed, plan.config_hash)


def _reference_column(eb: ExperimentBootstrap, base: str, reference: str) -> int | None:
    kind = JobKind.BASE if reference == "base" else JobKind.SINGLE
    ids = [i for i, job in eb.jobs.items() if job.base == base and job.kind is kind]
    if not ids:
        return None
    if reference == "base":
        return eb.columns[ids[0]]
    return eb.columns[max(ids, key=lambda i: (eb.recorded[i], i))]


def _cell_seed(seed: int, *parts) -> int:
    return seed * 1_000_003 + zlib.crc32("|".join(map(str, parts)).encode())


def build_ci_cells(plan, eb: ExperimentBootstrap, table: str, methods: list[str] | None = None,
                   labels: list[str] | None = None) -> list[CellCI]:
    """Every (base, method label, n) cell of one table, then the Average rows.

    The table's methods are given as registry names (`methods`, every configuration of them) or as the
    display labels of the configurations it shows (`labels`, e.g. LoadedConfig.report_labels(table)).
    """
    reference = TABLE_REFERENCE[table]
    planned: dict = {}
    for job in plan.main_grid():
        if job.kind is not JobKind.BASE:
            key = (job.base, job.label if job.kind is JobKind.MERGE else None, job.n)
            planned[key] = planned.get(key, 0) + 1
    grid = plan.grid_merges()
    if labels is None:
        labels = list(dict.fromkeys(j.label for j in grid if j.method in (methods or [])))
    labels = [label for label in labels if any(j.label == label for j in grid)]
    sizes = sorted({j.n for j in grid if j.label in labels})
    bases = list(dict.fromkeys(j.base for j in plan.main_grid()))
    cells, replicate_means, replicate_shares = [], {}, {}
    for base in bases:
        ref = _reference_column(eb, base, reference)
        for label in labels:
            for n in [1, *sizes]:
                ids = [i for i, job in eb.jobs.items() if job.base == base and job.n == n
                       and (job.kind is JobKind.SINGLE if n == 1 else (job.kind is JobKind.MERGE
                                                                         and job.label == label))]
                if ref is None or not ids:
                    continue
                cb = cell_bootstrap(eb.observed, eb.replicates, [eb.columns[i] for i in sorted(ids)], ref,
                                    seed=_cell_seed(eb.seed, table, base, label, n))
                replicate_means[(base, label, n)], replicate_shares[(base, label, n)] = cb.cell_mean, cb.cell_share
                lo, hi = cb.mean_interval()
                plo, phi = cb.share_interval()
                cells.append(CellCI(base, label, n, len(ids), planned.get((base, None if n == 1 else label, n), 0),
                                    100 * float(np.mean(cb.observed > TIE_TOLERANCE)), 100 * plo, 100 * phi,
                                    100 * float(np.mean(cb.observed)), 100 * lo, 100 * hi,
                                    int(cb.significant_gains().sum())))
    if len(bases) > 1:
        for label in labels:
            for n in [1, *sizes]:
                parts = [c for c in cells if c.label == label and c.n == n]
                if len(parts) != len(bases):
                    continue
                means = np.mean([replicate_means[(c.base, label, n)] for c in parts], axis=0)
                shares = np.mean([replicate_shares[(c.base, label, n)] for c in parts], axis=0)
                lo, hi = np.quantile(means, [0.025, 0.975])
                plo, phi = np.quantile(shares, [0.025, 0.975])
                cells.append(CellCI("Average", label, n, sum(c.models for c in parts), sum(c.planned for c in parts),
                                    float(np.mean([c.percent for c in parts])), 100 * plo, 100 * phi,
                                    float(np.mean([c.delta for c in parts])), 100 * lo, 100 * hi,
                                    sum(c.significant for c in parts)))
    return cells


def accuracy_intervals(plan, eb: ExperimentBootstrap, level: float = 0.95) -> dict:
    """(base, label, n) -> 95% interval (accuracy %) of the cell's mean accuracy, subsets and items resampled;
    n = 1 (the single checkpoints) under every label. For the error bars of Figures 3 and 6."""
    out = {}
    alpha = (1 - level) / 2
    labels = list(dict.fromkeys(j.label for j in eb.jobs.values() if j.kind is JobKind.MERGE))
    for base in dict.fromkeys(j.base for j in eb.jobs.values()):
        for label in labels:
            for n in sorted({j.n for j in eb.jobs.values() if j.base == base and (j.label == label or j.n == 1)}):
                ids = sorted(i for i, j in eb.jobs.items() if j.base == base and j.n == n
                             and (j.kind is JobKind.SINGLE if n == 1 else j.kind is JobKind.MERGE
                                  and j.label == label))
                if not ids:
                    continue
                cb = cell_bootstrap(eb.observed, eb.replicates, [eb.columns[i] for i in ids], None,
                                    seed=_cell_seed(eb.seed, "accuracy", base, label, n))
                lo, hi = np.quantile(cb.cell_mean, [alpha, 1 - alpha])
                out[(base, label, n)] = (100 * float(lo), 100 * float(hi))
    return out


def footnote(table: str, eb: ExperimentBootstrap) -> str:
    what = "the base model" if TABLE_REFERENCE[table] == "base" else "the best single checkpoint"
    return (f"Each cell: % of models beating {what} [95% interval] / mean delta in percentage points "
            f"[95% interval] · models with a significant paired gain / models. Intervals: hierarchical bootstrap "
            f"({eb.resamples} resamples, seed {eb.seed}): the cell's subsets redrawn with replacement and the "
            "benchmark items redrawn within each task, the same items for every model and the reference. "
            f"Point values recomputed from per-item results. * = fewer models than planned. "
            f"Config hash {eb.config_hash[:12]}, {len(eb.columns)} results with per-item data.")


def wide_rows(cells: list[CellCI]) -> tuple[list[str], list[list[str]]]:
    sizes = sorted({c.n for c in cells})
    headers = ["Model", "Method", *(f"n={n}" for n in sizes)]
    rows, by_key = [], {(c.base, c.label, c.n): c for c in cells}
    for base in dict.fromkeys(c.base for c in cells):
        for i, label in enumerate(dict.fromkeys(c.label for c in cells if c.base == base)):
            rows.append([base if i == 0 else "", label,
                         *(by_key[(base, label, n)].text() if (base, label, n) in by_key else "–" for n in sizes)])
    return headers, rows


def to_markdown(cells: list[CellCI], note: str) -> str:
    headers, rows = wide_rows(cells)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + f"\n\n{note}\n"


CSV_FIELDS = ("model", "method", "n", "models", "planned", "percent", "percent_low", "percent_high", "delta",
              "delta_low", "delta_high", "significant")


def to_csv(cells: list[CellCI]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for c in cells:
        writer.writerow([c.base, c.label, c.n, c.models, c.planned, f"{c.percent:.2f}", f"{c.percent_low:.2f}",
                         f"{c.percent_high:.2f}", f"{c.delta:.4f}", f"{c.delta_low:.4f}", f"{c.delta_high:.4f}",
                         c.significant])
    return buffer.getvalue()


def to_latex(cells: list[CellCI], note: str) -> str:
    headers, rows = wide_rows(cells)
    lines = [r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c.replace("·", "|")) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", "% " + latex_escape(note)]
    return "\n".join(lines) + "\n"


def write_ci_tables(plan, store, out_dir, loaded=None, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    eb: ExperimentBootstrap | None = None) -> list:
    """table{1,2,3}_ci.{md,csv,tex} for every table with methods in the config; returns the paths written."""
    eb = eb or bootstrap_experiment(plan, store, resamples=resamples, seed=seed)
    paths = []
    for table, methods in table_methods(loaded).items():
        if table not in TABLE_REFERENCE:
            continue
        labels = loaded.report_labels(table) if hasattr(loaded, "report_labels") else None
        cells = build_ci_cells(plan, eb, table, methods, labels)
        if not cells:
            continue
        note = footnote(table, eb)
        for suffix, text in (("md", to_markdown(cells, note)), ("csv", to_csv(cells)), ("tex", to_latex(cells, note))):
            paths.append(atomic_write_text(out_dir / f"{table}_ci.{suffix}", text))
    return paths


CI_TITLES = {
    "table1_ci": "Table 1 with 95% intervals (subsets and items resampled) and significant gains",
    "table2_ci": "Table 2 with 95% intervals (subsets and items resampled) and significant gains",
    "table3_ci": "Table 3 with 95% intervals (subsets and items resampled) and significant gains",
}


def ci_artifacts(loaded, plan, store, out_dir, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
    """For `repro report all`: (CI table artifacts, Figure 3/6 error-bar intervals or None, skipped notes)."""
    grid = plan.grid_merges()
    finished = store.finished_ids()
    if not any(j.id in finished for j in grid):
        return [], None, [f"{title}: not supported by these results (no in-the-wild grid results)"
                          for title in CI_TITLES.values()]
    try:
        eb = bootstrap_experiment(plan, store, resamples=resamples, seed=seed)
    except ItemDataError as exc:
        return [], None, [f"{title}: {exc}" for title in CI_TITLES.values()]
    artifacts, skipped = [], []
    for table in TABLE_REFERENCE:
        labels = loaded.report_labels(table) if hasattr(loaded, "report_labels") else None
        cells = build_ci_cells(plan, eb, table, table_methods(loaded).get(table), labels)
        key = f"{table}_ci"
        if not cells:
            skipped.append(f"{CI_TITLES[key]}: not supported by these results (none of the table's methods has results)")
            continue
        note = footnote(table, eb)
        files = [atomic_write_text(out_dir / f"{key}.{suffix}", text) for suffix, text in
                 (("md", to_markdown(cells, note)), ("csv", to_csv(cells)), ("tex", to_latex(cells, note)))]
        headers, rows = wide_rows(cells)
        artifacts.append(Artifact(key, CI_TITLES[key], "table", files, len(eb.columns), notes=[note],
                                  table=(headers, rows)))
    return artifacts, accuracy_intervals(plan, eb), skipped
