"""Figures 3, 4, 6 and 7-10 of the paper, from stored results only.

- Figure 3 / Figure 6: per base (one panel each), the mean average accuracy (%) of every method of Table 1
  (Fig. 3) or Table 3 (Fig. 6) against the number of merged checkpoints n (n = 1: the single checkpoints),
  the standard deviation over subsets shaded, the base model as a dashed line.
- Figure 4: the mean ‖θ_merged − θ_base‖₂ against n, per method and base, standard deviation shaded.
- Figures 7-10: task-wise accuracy, one figure per base, one panel per benchmark of the suite.

The data and the drawing are separate: `*_panels` build plain `Panel`s (lines of `Point`s with mean,
standard deviation, count and an optional `interval`, e.g. a confidence interval another module computes,
drawn as error bars; repro.report.panel_drawing); `draw_panels` renders any list of panels. Each figure is
handed to a `FigureRenderer` (repro.report.figure_pool), which draws it here or in a worker process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from repro.plan import JobKind
from repro.report.figure_pool import FigureRenderer
from repro.report.figure_style import (
    base_title,
    figure_key,
    figure_numbers,
    method_colors,
    numbering_note,
    order_bases,
)
from repro.report.panel_drawing import Line, Panel, Point, draw_panels

N_AXIS = "number of merged checkpoints n (count)"
ACCURACY_AXIS = "average accuracy (%)"
NORM_AXIS = "‖θ_merged − θ_base‖₂\n(weight-space L2 norm)"


def _grid_jobs(plan) -> list:
    return plan.main_grid()


def _by_base(plan, records, value, labels: list[str], order=()) -> dict[str, dict]:
    """base -> {"base": value, "single": [values], label: {n: [values]}} from the main grid's results, bases
    in panel order (`order`: the config's `report.panel_order`, see `figure_style.order_bases`)."""
    out: dict[str, dict] = {base: {"base": None, "single": [], "merges": {}}
                            for base in order_bases([job.base for job in _grid_jobs(plan)], order)}
    for job in _grid_jobs(plan):
        entry = out.setdefault(job.base, {"base": None, "single": [], "merges": {}})
        record = records.get(job.id)
        v = value(record) if record is not None else None
        if v is None:
            continue
        if job.kind is JobKind.BASE:
            entry["base"] = v
        elif job.kind is JobKind.SINGLE:
            entry["single"].append(v)
        elif job.kind is JobKind.MERGE and job.label in labels:
            entry["merges"].setdefault(job.label, {}).setdefault(job.n, []).append(v)
    return out


def accuracy_panels(plan, records, labels: list[str], value=None, intervals: dict | None = None,
                    order=()) -> list[Panel]:
    """Figures 3 and 6: one panel per base; n = 1 is the single checkpoints (the same for every method).

    `intervals`: optional (base, label, n) -> (low, high) in accuracy %, drawn as error bars
    (repro.report.ci_tables.accuracy_intervals: subsets and items resampled)."""
    value = value or (lambda r: r.average)
    panels = []
    for base, entry in _by_base(plan, records, value, labels, order).items():
        lines = []
        for label in labels:
            by_n = dict(entry["merges"].get(label, {}))
            if not by_n:
                continue
            if entry["single"]:
                by_n[1] = entry["single"]
            points = [Point.of(n, by_n[n], 100.0) for n in sorted(by_n)]
            for point in points if intervals else []:
                point.interval = intervals.get((base, label, int(point.x)))
            lines.append(Line(label, points))
        reference = None if entry["base"] is None else 100.0 * entry["base"]
        if lines or reference is not None:
            panels.append(Panel(base_title(base), lines, reference))
    return panels


def norm_panels(plan, records, labels: list[str], order=()) -> list[Panel]:
    """Figure 4: ‖θ_merged − θ_base‖₂ per method against n (merges only; n = 1 has no merge)."""
    def norm(record):
        return record.task_vector_l2

    panels = []
    for base, entry in _by_base(plan, records, norm, labels, order).items():
        lines = [Line(label, [Point.of(n, v) for n, v in sorted(entry["merges"][label].items())])
                 for label in labels if entry["merges"].get(label)]
        if lines:
            panels.append(Panel(base_title(base), lines))
    return panels


def task_scores(record) -> dict[str, float]:
    """Task -> its primary metric value (what the suite average averages)."""
    return record.primary_scores()


def taskwise_panels(plan, records, base: str, labels: list[str], tasks: list[str]) -> list[Panel]:
    """Figures 7-10: one panel per benchmark of `base`, every method against n."""
    panels = []
    for task in tasks:
        [panel] = [p for p in accuracy_panels(
            _only_base(plan, base), records, labels, value=lambda r, t=task: task_scores(r).get(t))] or [None]
        if panel is not None:
            panel.title = task
            panels.append(panel)
    return panels


def _only_base(plan, base: str):
    return dataclasses.replace(plan, jobs=tuple(j for j in plan.jobs if j.base == base))


@dataclass
class FigureFile:
    key: str
    title: str
    files: list[Path]
    n_results: int


def _count(plan, records, labels, base: str | None = None) -> int:
    return sum(1 for job in _grid_jobs(plan) if job.id in records and (base is None or job.base == base)
               and (job.is_reference or job.label in labels))


def main_figures(plan, records, out_dir: Path, *, table1_labels: list[str], table3_labels: list[str],
                 all_labels: list[str], tasks: list[str], intervals: dict | None = None,
                 order=(), renderer: FigureRenderer | None = None) -> list[FigureFile]:
    """Figures 3, 4, 6 and 7-10 that the results support (a figure without data is not drawn).

    `intervals` (optional): error bars of Figures 3 and 6, see `accuracy_panels`. `order`: the panels' base
    order (the config's `report.panel_order`; the paper's: LLAMA 3.2 3B, QWEN3 4B, LLAMA 3.1 8B, QWEN3 8B).
    Legends list the methods in the order of the table they belong to (the config's `report` section).
    `renderer` draws the figures (default: here, one after the other)."""
    renderer = renderer or FigureRenderer(jobs=1)
    out: list[FigureFile] = []
    colors = method_colors(all_labels)
    for number, key, labels, what in ((3, "fig03_accuracy_vs_n", table1_labels, "Table 1 methods"),
                                      (6, "fig06_accuracy_vs_n_subspace", table3_labels, "Table 3 methods")):
        panels = [p for p in accuracy_panels(plan, records, labels, intervals=intervals, order=order) if p.lines]
        if panels:
            bars = "; bars: 95% interval, subsets and items resampled" if intervals else ""
            title = (f"Figure {number}: average accuracy vs. number of merged checkpoints ({what}; mean ± std over "
                     f"subsets{bars})")
            out.append(FigureFile(key, title, renderer.draw(draw_panels, panels, stem=out_dir / key, title=title,
                                                            xlabel=N_AXIS, ylabel=ACCURACY_AXIS, colors=colors),
                                  _count(plan, records, labels)))
    panels = norm_panels(plan, records, all_labels, order)
    if panels:
        title = "Figure 4: ‖θ_merged − θ_base‖₂ vs. number of merged checkpoints (mean ± std over subsets)"
        out.append(FigureFile("fig04_task_vector_norm", title,
                              renderer.draw(draw_panels, panels, stem=out_dir / "fig04_task_vector_norm", title=title,
                                            xlabel=N_AXIS, ylabel=NORM_AXIS, colors=colors),
                              sum(1 for j in plan.grid_merges() if j.id in records)))
    config_order = list(dict.fromkeys(job.base for job in plan.grid_merges()))
    numbers = figure_numbers("taskwise", config_order)  # numbers by the paper's base, else config order
    bases = order_bases(config_order, order)
    for base in bases:
        panels = [p for p in taskwise_panels(plan, records, base, all_labels, tasks) if p.lines]
        if not panels:
            continue
        number = numbers[base]
        key = figure_key(number, f"taskwise_{base}")
        title = (f"Figure {number}: task-wise accuracy of {base_title(base)} vs. n (mean ± std over subsets)"
                 f"{numbering_note('taskwise', base, number)}")
        out.append(FigureFile(key, title, renderer.draw(draw_panels, panels, stem=out_dir / key, title=title,
                                                        xlabel=N_AXIS, ylabel="accuracy (%)", columns=4, colors=colors),
                              _count(plan, records, all_labels, base)))
    return out
