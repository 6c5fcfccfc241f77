"""`repro verify --published`: the published tables' own arithmetic, from the transcribed cells alone.

Rules (each finding names the rule and every cell involved):
- average:  an "Average" row against the mean of its model rows, within rounding. The printed model
  values are rounded (percentages to 1, deltas to 0.01, accuracies to 0.1), so the mean of the true values
  lies within half a unit of the mean of the printed ones, and the printed average within half a unit of
  that: |average - mean(printed)| <= 1 unit. A percentage that the exact fractions (k_i / m) cannot give,
  but the mean of the rounded values can, is a note (the paper averaged rounded numbers).
- shift:    Table 2 (vs the best checkpoint) against Table 1 TA (vs the base), cell by cell: both deltas are
  mean differences over the same models, so delta2 - delta1 = base - best for every n of a model, within
  0.01 (two rounded deltas) and within 0.1 of the printed base - best (two rounded accuracies); one shift
  must fit every cell of a model (the Average rows too, with the averaged accuracies). The percentages must move the right way: a stronger reference cannot
  be beaten more often.
- rounding: every model-row percentage a possible rounding of 100 k / m, k = 0..m, m the column's number
  of combinations (n = 1: 12, n = 2..10: 15, n = 12: 1), half-up or half-even.
- logic:    what is possible at all: at n = 1 no checkpoint beats the best checkpoint (Table 2 n = 1 must
  be 0 %, delta <= 0); a checkpoint beating the base (Table 1 n = 1 > 0 %) makes the best checkpoint better
  than the base; the best checkpoint is at least the checkpoints' mean; 100 % needs a positive delta, 0 %
  a delta <= 0, and vice versa; the n = 1 column and the base accuracy are the same for every method of a
  model in every table (the same 12 checkpoints and base).
- text:     the numbers quoted in sections 3-4 against the tables (repro.report.published_text).
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean, median

from repro.facts.reference import AVERAGE, Reference, ReferenceCell, display_path
from repro.report.published_findings import EPS, Finding, describe
from repro.report.published_text import check_claims

UNIT = {"percentage": 1.0, "delta": 0.01, "reference_accuracy": 0.1}
RULES = ("average", "shift", "rounding", "logic", "text")


def _roundings(x: float, digits: int = 0) -> set[float]:
    """The printed values a true value x can give: round-half-up and round-half-even."""
    scale = 10**digits
    half_up = math.floor(x * scale + 0.5 + EPS) / scale
    return {half_up, round(x, digits)}


def possible_counts(percentage: float, m: int) -> list[int]:
    """Every k in 0..m with 100 k / m printing as `percentage`."""
    return [k for k in range(m + 1) if percentage in _roundings(100.0 * k / m)]


def _index(cells: list[ReferenceCell]) -> dict:
    return {cell.key: cell for cell in cells}


def _groups(cells: list[ReferenceCell]) -> dict[tuple[str, str, int], list[ReferenceCell]]:
    """(table, method, n) -> cells of every row (models and Average)."""
    out: dict = defaultdict(list)
    for cell in cells:
        out[(cell.table, cell.method, cell.n)].append(cell)
    return out


def check_averages(cells: list[ReferenceCell]) -> list[Finding]:
    findings = []
    for (table, method, n), group in sorted(_groups(cells).items()):
        averages = [c for c in group if c.model == AVERAGE]
        models = [c for c in group if c.model != AVERAGE]
        if not averages or not models:
            continue
        avg = averages[0]
        involved = tuple(describe(c) for c in [*models, avg])
        for name in ("percentage", "delta", "reference_accuracy"):
            if name == "reference_accuracy" and n != min(c.n for c in cells if c.table == table):
                continue  # the accuracy column is one per row: check it once
            m = mean(c.value(name) for c in models)
            printed = avg.value(name)
            if abs(printed - m) > UNIT[name] + EPS:
                findings.append(Finding("average", "inconsistency",
                                        f"{table} Average {method} n={n}: {name} {avg_text(avg, name)} but the mean "
                                        f"of the {len(models)} model rows is {m:.4g} (rounding allows +/-{UNIT[name]:g})",
                                        involved))
        counts = [possible_counts(c.value("percentage"), c.combinations) for c in models]
        if all(counts) and abs(avg.value("percentage") - mean(c.value("percentage") for c in models)) <= 1 + EPS:
            exact = {100.0 * sum(ks) / sum(c.combinations for c in models) for ks in _products(counts)}
            if not any(avg.value("percentage") in _roundings(x) for x in exact):
                shown = ", ".join(f"{x:.2f}" for x in sorted(exact))
                findings.append(Finding("average", "note",
                                        f"{table} Average {method} n={n}: {avg.percentage}% fits the mean of the rounded "
                                        f"model percentages, not the exact share of all combinations ({shown}%)",
                                        involved))
    return findings


def avg_text(cell: ReferenceCell, name: str) -> str:
    return str(getattr(cell, name))


def _products(lists: list[list[int]]):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for rest in _products(lists[1:]):
            yield (head, *rest)


def check_rounding(cells: list[ReferenceCell]) -> list[Finding]:
    findings = []
    for cell in cells:
        if cell.model == AVERAGE:
            continue
        if not possible_counts(cell.value("percentage"), cell.combinations):
            near = sorted({round(100 * k / cell.combinations, 2) for k in range(cell.combinations + 1)},
                          key=lambda x: abs(x - cell.value("percentage")))[:2]
            findings.append(Finding("rounding", "inconsistency",
                                    f"{cell.table} {cell.model} {cell.method} n={cell.n}: {cell.percentage}% is not k/"
                                    f"{cell.combinations} for any k (nearest: {', '.join(f'{x:g}%' for x in near)})",
                                    (describe(cell),)))
    return findings


def _shift_interval(d1: ReferenceCell, d2: ReferenceCell) -> tuple[float, float]:
    implied = d2.value("delta") - d1.value("delta")
    return implied - 2 * 0.005 - EPS, implied + 2 * 0.005 + EPS


def check_shift(cells: list[ReferenceCell], method: str = "TA") -> list[Finding]:
    index, findings = _index(cells), []
    models = sorted({c.model for c in cells if c.table == "table2"})
    for model in models:
        pairs = [(index[("table1", model, method, c.n)], c) for c in cells
                 if c.table == "table2" and c.model == model and c.method == method
                 and ("table1", model, method, c.n) in index]
        if not pairs:
            continue
        base, best = pairs[0][0].value("reference_accuracy"), pairs[0][1].value("reference_accuracy")
        printed = base - best
        lo_p, hi_p = printed - 0.1 - EPS, printed + 0.1 + EPS
        implied = [d2.value("delta") - d1.value("delta") for d1, d2 in pairs]
        consensus = median(implied)
        for (d1, d2), s in zip(pairs, implied, strict=True):
            lo, hi = _shift_interval(d1, d2)
            cells_involved = (describe(d1), describe(d2))
            if hi < lo_p or lo > hi_p:
                findings.append(Finding("shift", "inconsistency",
                                        f"{model} n={d1.n}: Table 2 delta {d2.delta} - Table 1 delta {d1.delta} = {s:+.2f}, "
                                        f"but base - best = {base:g} - {best:g} = {printed:+.1f} (+/-0.1 rounding)",
                                        cells_involved))
            elif abs(s - consensus) > 0.02 + EPS:
                findings.append(Finding("shift", "inconsistency",
                                        f"{model} n={d1.n}: implied shift {s:+.2f} differs from the other columns' "
                                        f"{consensus:+.2f} by more than two roundings (0.02)", cells_involved))
            p1, p2 = d1.value("percentage"), d2.value("percentage")
            if d1.model == AVERAGE:
                continue  # per-model shifts differ in sign: the Average percentages need not move together
            if hi_p < 0 and p2 > p1:
                findings.append(Finding("shift", "inconsistency",
                                        f"{model} n={d1.n}: the best checkpoint ({best:g}) is stronger than the base "
                                        f"({base:g}), yet {p2:g}% beat it vs {p1:g}% beating the base", cells_involved))
            if lo_p > 0 and p2 < p1:
                findings.append(Finding("shift", "inconsistency",
                                        f"{model} n={d1.n}: the best checkpoint ({best:g}) is weaker than the base "
                                        f"({base:g}), yet only {p2:g}% beat it vs {p1:g}% beating the base", cells_involved))
    return findings


def check_logic(cells: list[ReferenceCell]) -> list[Finding]:
    index, findings = _index(cells), []
    for cell in cells:
        p, d = cell.value("percentage"), cell.value("delta")
        problem = None
        if p >= 100 and d <= 0:
            problem = "every combination beats the reference, yet the mean delta is not positive"
        elif p <= 0 and d > 0:
            problem = "no combination beats the reference, yet the mean delta is positive"
        if problem:
            findings.append(Finding("logic", "inconsistency", f"{cell.table} {cell.model} {cell.method} n={cell.n}: "
                                    f"{problem}", (describe(cell),)))
        if cell.table == "table2" and cell.n == 1:
            if p > 0:
                findings.append(Finding("logic", "inconsistency",
                                        f"table2 {cell.model} n=1: {cell.percentage}% of the single checkpoints beat the best "
                                        "single checkpoint; none can (the best cannot beat itself)", (describe(cell),)))
            if d > 0:
                findings.append(Finding("logic", "inconsistency", f"table2 {cell.model} n=1: mean delta {cell.delta} > 0 "
                                        "to the best checkpoint", (describe(cell),)))
            t1 = index.get(("table1", cell.model, cell.method, 1))
            if t1 is not None and cell.model != AVERAGE:
                base, best = t1.value("reference_accuracy"), cell.value("reference_accuracy")
                if t1.value("percentage") > 0 and best < base - 0.1 + EPS:
                    findings.append(Finding("logic", "inconsistency",
                                            f"{cell.model}: {t1.percentage}% of the checkpoints beat the base ({base:g}), "
                                            f"so the best checkpoint must exceed it, but Best FT is {best:g}",
                                            (describe(t1), describe(cell))))
                if best < base + t1.value("delta") - 0.055 - EPS:
                    findings.append(Finding("logic", "inconsistency",
                                            f"{cell.model}: the best checkpoint ({best:g}) is below the checkpoints' mean "
                                            f"({base:g} {t1.delta} = {base + t1.value('delta'):.2f})",
                                            (describe(t1), describe(cell))))
    findings += _same_across_methods(cells)
    return findings


def _same_across_methods(cells: list[ReferenceCell]) -> list[Finding]:
    """Per (reference kind, model): one base/best accuracy and one n=1 cell for every method and table."""
    findings = []
    groups: dict = defaultdict(list)
    for cell in cells:
        groups[(cell.reference, cell.model)].append(cell)
    for (reference, model), group in sorted(groups.items()):
        accuracies = {c.reference_accuracy for c in group}
        if len(accuracies) > 1:
            findings.append(Finding("logic", "inconsistency",
                                    f"{model}: the {reference} accuracy differs between rows ({', '.join(sorted(accuracies))})",
                                    tuple(describe(c) for c in group if c.n == 1)))
        singles = [c for c in group if c.n == 1]
        if len({(c.percentage, c.delta) for c in singles}) > 1:
            findings.append(Finding("logic", "inconsistency",
                                    f"{model} n=1 ({reference}): the single checkpoints are the same for every method, "
                                    "but the cells differ", tuple(describe(c) for c in singles)))
    return findings


def check_published(reference: Reference) -> list[Finding]:
    cells = reference.cells
    return [*check_averages(cells), *check_shift(cells), *check_rounding(cells), *check_logic(cells),
            *check_claims(reference.claims, cells)]


def summary_line(reference: Reference, findings: list[Finding]) -> str:
    bad = [f for f in findings if f.severity == "inconsistency"]
    per_rule = ", ".join(f"{rule} {sum(f.rule == rule for f in bad)}" for rule in RULES)
    notes = len(findings) - len(bad)
    return (f"verify --published: {len(reference.cells)} cells, {len(reference.claims)} text claims: "
            f"{len(bad)} inconsistencies ({per_rule}), {notes} notes")


def render_markdown(reference: Reference, findings: list[Finding]) -> str:
    lines = ["# Published Tables 1-3: internal consistency", "",
             f"Source: `{display_path(reference.root)}` (tables.csv: {len(reference.cells)} cells as printed; "
             f"text_claims.yaml: {len(reference.claims)} quoted passages).", "",
             summary_line(reference, findings), "", "## Rules", ""]
    bullets: list[str] = []
    for line in (__doc__ or "").split("Rules")[1].splitlines()[1:]:
        text = " ".join(line.split())
        if text.startswith("- "):
            bullets.append(text)
        elif text and bullets:
            bullets[-1] += " " + text
    lines += bullets
    for severity, title in (("inconsistency", "Inconsistencies"), ("note", "Notes")):
        chosen = [f for f in findings if f.severity == severity]
        lines += ["", f"## {title} ({len(chosen)})", ""]
        if not chosen:
            lines.append("none")
        for rule in RULES:
            for f in (f for f in chosen if f.rule == rule):
                lines.append(f"- **{f.rule}**: {f.message}")
                lines += [f"  - `{c}`" for c in f.cells]
    return "\n".join(lines) + "\n"
