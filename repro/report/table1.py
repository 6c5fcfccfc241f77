"""Tables 1, 2 and 3 of the paper: per base, method and n, "% of models beating a reference / mean delta".

Table 1 (TA, Model Stock, TIES) and Table 3 (TA + SB, TIES + SB, TSV-M, Iso-C) compare with the base model;
Table 2 (TA) with the best single fine-tuned checkpoint of each base (highest average accuracy among the
n = 1 results). Which methods each table shows is the config's `report:` section (LoadedConfig.report_labels).
Column headers are the paper's "n = m (k)": k is the number of combinations EVALUATED (results found),
a range "k1–k2" when rows differ.

For every (base, method, n) cell: the percentage (rounded to an integer) of evaluated models whose average
accuracy exceeds the base model's, and the mean difference (merged − base) of average accuracy in
percentage points. The n = 1 column is the 12 single checkpoints, identical for every method. The
"Average" rows average the per-base percentages and deltas (as in the paper). A cell computed from fewer
results than the plan expects is marked with `*` (the run is incomplete); a cell with none shows `–`.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from repro.report.paired_bootstrap import TIE_TOLERANCE
from repro.report.results_view import ExperimentResults
from repro.report.table_text import PaperTable

MISSING = "–"


@dataclass(frozen=True)
class Cell:
    percent: float | None
    delta: float | None
    complete: bool

    def text(self) -> str:
        if self.percent is None:
            return MISSING
        delta = round(self.delta, 2) + 0.0  # no "-0.00"
        return f"{self.percent:.0f} / {delta:+.2f}" + ("" if self.complete else "*")


def _cell(values: list[float], reference: float | None, planned: int) -> Cell:
    if reference is None or not values:
        return Cell(None, None, False)
    beats = sum(v - reference > TIE_TOLERANCE for v in values)  # an equal accuracy is no gain (float noise)
    return Cell(100.0 * beats / len(values), 100.0 * mean(v - reference for v in values), len(values) >= planned)


REFERENCES = {"base": "Base", "best_single": "Best FT"}


def _reference(entry, reference: str, planned_singles: int) -> float | None:
    if reference == "base":
        return entry.base_average
    if len(entry.singles) < planned_singles or not entry.singles:
        return None  # the best checkpoint is known only once every single checkpoint is evaluated
    return max(entry.singles.values())


def build_table1(results: ExperimentResults, labels: list[str] | None = None) -> PaperTable:
    """Table 1 (and Table 3, with its methods): every model against its base model."""
    return build_comparison_table(results, "base", labels)


def build_table2(results: ExperimentResults, labels: list[str] | None = None) -> PaperTable:
    """Table 2: every model against the best single fine-tuned checkpoint of its base."""
    return build_comparison_table(results, "best_single", labels)


def _count_text(counts: list[int]) -> str:
    low, high = min(counts, default=0), max(counts, default=0)
    return f"{low}" if low == high else f"{low}–{high}"


def evaluated_counts(results: ExperimentResults, labels: list[str]) -> dict[int, str]:
    """n -> how many combinations were evaluated ("15", or "12–15" when bases/methods differ)."""
    out = {1: _count_text([len(entry.singles) for entry in results.bases.values()])}
    for n in results.sizes:
        out[n] = _count_text([len(entry.merges[label][n]) for entry in results.bases.values() for label in labels
                              if results.planned_merges.get((entry.base, label, n))])
    return out


def incomplete_cells(results: ExperimentResults, labels: list[str] | None = None) -> list[str]:
    """Every (base, method, n) cell with fewer results than planned, e.g. "qwen3-4b TA n=4: 12 of 15"."""
    labels = results.method_labels if labels is None else [lab for lab in labels if lab in results.method_labels]
    out = []
    for base, entry in results.bases.items():
        planned = results.planned_singles.get(base, 0)
        if len(entry.singles) < planned:
            out.append(f"{base} n=1 (single checkpoints): {len(entry.singles)} of {planned}")
        if entry.base_average is None:
            out.append(f"{base} base model: not evaluated")
        for label in labels:
            for n in results.sizes:
                planned = results.planned_merges.get((base, label, n), 0)
                have = len(entry.merges[label][n])
                if have < planned:
                    out.append(f"{base} {label} n={n}: {have} of {planned}")
    return out


def build_comparison_table(results: ExperimentResults, reference: str, labels: list[str] | None = None) -> PaperTable:
    sizes = results.sizes
    labels = results.method_labels if labels is None else [lab for lab in labels if lab in results.method_labels]
    counts = evaluated_counts(results, labels)
    headers = ["Model", "Method", REFERENCES[reference], f"n=1 ({counts[1]})"]
    headers += [f"n={n} ({counts[n]})" for n in sizes]
    rows: list[list[str]] = []
    per_label: dict[str, list[list[Cell]]] = {label: [] for label in labels}
    base_values = []
    for base, entry in results.bases.items():
        ref = _reference(entry, reference, results.planned_singles.get(base, 0))
        singles = _cell(list(entry.singles.values()), ref, results.planned_singles.get(base, 0))
        base_text = MISSING if ref is None else f"{100 * ref:.1f}"
        if ref is not None:
            base_values.append(100 * ref)
        for i, label in enumerate(labels):
            cells = [singles] + [
                _cell(entry.merges[label][n], ref, results.planned_merges.get((base, label, n), 0))
                for n in sizes
            ]
            per_label[label].append(cells)
            rows.append([base if i == 0 else "", label, base_text, *(c.text() for c in cells)])
    if len(results.bases) > 1:
        avg_base = f"{mean(base_values):.1f}" if len(base_values) == len(results.bases) else MISSING
        for i, label in enumerate(labels):
            texts = []
            for col in range(len(sizes) + 1):
                cells = [cells_of_base[col] for cells_of_base in per_label[label]]
                if any(c.percent is None for c in cells):
                    texts.append(MISSING)
                    continue
                avg = Cell(mean(c.percent for c in cells), mean(c.delta for c in cells), all(c.complete for c in cells))
                texts.append(avg.text())
            rows.append(["Average" if i == 0 else "", label, avg_base, *texts])
    what = "the base model's" if reference == "base" else "the best single fine-tuned checkpoint's"
    footnote = (
        f"Each cell: % of models whose average accuracy exceeds {what} / mean accuracy difference "
        "to it in percentage points. Headers: n = models merged (number of subsets evaluated). "
        "Header k counts the combinations evaluated. * = fewer results than planned; – = no result yet. "
        f"Config hash {results.config_hash[:12]}, {results.n_results} results."
    )
    return PaperTable(headers, rows, footnote)
