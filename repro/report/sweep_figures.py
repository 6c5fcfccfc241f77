"""Appendix C: Figures 11-18 from the results of the sweep configs (configs/ablation_*.yaml).

Every sweep point is an ordinary merge job (all checkpoints of a base, one grid point of parameters);
`Plan.sweep_points` says which job holds which point. A sweep whose x axis is a grid parameter (λ, density,
β: Figs 11, 12, 17, 18) is one figure with one panel per base and one line per method (and per value of
`series`); a sweep drawn against the merged task vector's L2 norm (Figs 13-16) is one figure per base with
one line per `series` value (density), each point labelled with its other parameter (λ). The base model is
the dashed line.
"""

from __future__ import annotations

from pathlib import Path

from repro.report.figure_pool import FigureRenderer
from repro.report.figure_style import base_title, figure_key, figure_numbers, numbering_note, order_bases
from repro.report.figures import ACCURACY_AXIS, NORM_AXIS, FigureFile
from repro.report.panel_drawing import Line, Panel, Point, draw_panels

PARAMETER_AXES = {
    "lambda": "scaling coefficient λ (unitless)",
    "density": "top-k% density (fraction of entries kept)",
    "beta": "boosting threshold β (fraction of spectral energy)",
    "weight": "model weight α (unitless)",
}


def _value_text(values: dict, skip: set[str]) -> str:
    return ", ".join(f"{'λ' if k == 'lambda' else k} = {v:g}" for k, v in values.items() if k not in skip)


def _base_reference(plan, records, base: str) -> float | None:
    job = plan.base_reference(base)
    record = records.get(job.id) if job else None
    return None if record is None or record.average is None else 100.0 * record.average


def _points(plan, sweep_name: str, base: str):
    return [p for p in plan.sweep_points if p.sweep == sweep_name and p.base == base]


def _lines(points, records, x_axis: str, series: str | None) -> list[Line]:
    lines: dict[str, list] = {}
    for point in points:
        record = records.get(point.job_id)
        if record is None or record.average is None:
            continue
        if x_axis == "task_vector_l2":
            x = record.task_vector_l2
            if x is None:
                continue
        else:
            x = float(point.values[x_axis])
        name = point.label if series is None else f"{point.label}, {series} = {point.values[series]:g}"
        lines.setdefault(name, []).append((x, record.average, point.values))
    out = []
    for name, rows in lines.items():
        rows.sort(key=lambda r: r[0] if x_axis != "task_vector_l2" else tuple(r[2].values()))
        labels = None
        if x_axis == "task_vector_l2":
            labels = [_value_text(r[2], {series} if series else set()) for r in rows]
        out.append(Line(name, [Point(x, 100.0 * avg, 0.0, 1) for x, avg, _ in rows], point_labels=labels))
    return out


def sweep_figures(loaded, plan, records, out_dir: Path, renderer: FigureRenderer | None = None) -> list[FigureFile]:
    """Figures 11-18 of the config's sweeps that have results; `renderer` draws them (default: here)."""
    renderer = renderer or FigureRenderer(jobs=1)
    out: list[FigureFile] = []
    bases = order_bases([p.base for p in plan.sweep_points], loaded.config.report.panel_order)
    jobs = {job.id: job for job in plan.jobs}
    for sweep in loaded.config.sweeps:
        x_axis = sweep.x_axis
        xlabel = NORM_AXIS if x_axis == "task_vector_l2" else PARAMETER_AXES.get(x_axis, x_axis)
        panels = []
        for base in bases:
            points = _points(plan, sweep.name, base)
            lines = _lines(points, records, x_axis, sweep.series)
            if not lines:
                continue
            xs = [p.x for line in lines for p in line.points]
            # A log axis only for a grid that leaves the unit range by far (TA's λ = 10); β and density stay linear.
            wide = x_axis != "task_vector_l2" and min(xs) > 0 and max(xs) > 5 and max(xs) / min(xs) > 50
            n = len(jobs[points[0].job_id].subset)
            panel = Panel(f"{base_title(base)} (all {n} checkpoints)", lines, _base_reference(plan, records, base),
                          auto_xticks=x_axis == "task_vector_l2" or len(set(xs)) > 8, xlog=wide)
            panel.notes.append(f"{sum(len(line.points) for line in lines)} of {len(points)} points")
            panels.append((base, panel, sum(len(line.points) for line in lines)))
        if not panels:
            continue
        name = sweep.title or sweep.name
        if sweep.per_base:
            numbers = figure_numbers("ties_grid", [b for b, _, _ in panels], first=sweep.figure)
            for base, panel, count in panels:
                number = numbers[base]
                key = figure_key(number, f"{sweep.name}_{base}")
                title = f"Figure {number}: {name} — {base_title(base)}{numbering_note('ties_grid', base, number)}" \
                    if sweep.figure == 13 else f"Figure {number}: {name} — {base_title(base)}"
                out.append(FigureFile(key, title, renderer.draw(draw_panels, [panel], stem=out_dir / key, title=title,
                                                                xlabel=xlabel, ylabel=ACCURACY_AXIS,
                                                                panel_size=(6.4, 4.6)), count))
        else:
            key = figure_key(str(sweep.figure), sweep.name)
            title = f"Figure {sweep.figure}: {name}"
            out.append(FigureFile(key, title, renderer.draw(draw_panels, [p for _, p, _ in panels], stem=out_dir / key,
                                                            title=title, xlabel=xlabel, ylabel=ACCURACY_AXIS),
                                  sum(c for _, _, c in panels)))
    return out
