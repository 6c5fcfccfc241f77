"""Appendix E: Figures 27 (Qwen3 8B) and 28 (Qwen3 4B), homogeneous vs. mixed-domain merges.

One figure per base, one panel per domain suite (Table 5: medical, math). In each panel, per method, one
bar per experiment evaluated on that suite (e.g. "medical_only" and "all" on the medical suite): the
suite's average accuracy (unweighted mean of its tasks, %) of that experiment's merge; the base model's
score on the suite is the dashed line. The bars are drawn by repro.report.figure_drawing (through a
`FigureRenderer`).
"""

from __future__ import annotations

from pathlib import Path

from repro.plan import JobKind
from repro.report.figure_drawing import BarPanel, Bars, draw_bar_panels
from repro.report.figure_pool import FigureRenderer
from repro.report.figure_style import base_title, figure_key, figure_numbers, method_colors, numbering_note
from repro.report.figures import FigureFile


def experiment_name(experiment: str, n: int) -> str:
    """Legend text of an experiment: "medical_only" -> "Medical only (n = 3)", "all" -> "All experts (n = 6)"."""
    words = "All experts" if experiment == "all" else experiment.replace("_", " ").capitalize()
    return f"{words} (n = {n})"


def homogeneous_figures(plan, records, out_dir: Path, renderer: FigureRenderer | None = None) -> list[FigureFile]:
    """Figures 27-28 of the homogeneous experiments that have results; `renderer` draws them (default: here)."""
    renderer = renderer or FigureRenderer(jobs=1)
    jobs = [job for job in plan.homogeneous_jobs() if job.id in records]
    bases = list(dict.fromkeys(job.base for job in jobs if job.kind is JobKind.HOMOGENEOUS))
    numbers = figure_numbers("homogeneous", bases)
    out = []
    for base in bases:
        merges = [job for job in jobs if job.base == base and job.kind is JobKind.HOMOGENEOUS]
        base_job = next((job for job in jobs if job.base == base and job.kind is JobKind.BASE), None)
        base_scores = records[base_job.id].suite_averages if base_job else {}
        suites = list(dict.fromkeys(s for job in merges for s in job.suites))
        labels = list(dict.fromkeys(job.label for job in merges))
        experiments = list(dict.fromkeys(job.part_of.name for job in merges))
        colors = method_colors(experiments)
        number = numbers[base]
        key = figure_key(number, f"homogeneous_{base}")
        title = (f"Figure {number}: homogeneous vs. mixed-domain merges of {base_title(base)}"
                 f"{numbering_note('homogeneous', base, number)}")
        panels = []
        for suite in suites:
            present = [e for e in experiments if any(j.part_of.name == e and suite in j.suites for j in merges)]
            width = 0.8 / max(len(present), 1)
            bars = []
            for k, experiment in enumerate(present):
                xs, ys = [], []
                for i, label in enumerate(labels):
                    job = next((j for j in merges if j.label == label and j.part_of.name == experiment), None)
                    value = records[job.id].suite_averages.get(suite) if job else None
                    if value is not None:
                        xs.append(i - 0.4 + width * (k + 0.5))
                        ys.append(100.0 * value)
                n = next(j.n for j in merges if j.part_of.name == experiment)
                bars.append(Bars(xs, ys, width, colors[experiment], experiment_name(experiment, n)))
            reference = 100.0 * base_scores[suite] if suite in base_scores else None
            panels.append(BarPanel(suite, bars, reference))
        legend = [experiment_name(e, next(j.n for j in merges if j.part_of.name == e)) for e in experiments]
        files = renderer.draw(draw_bar_panels, panels, labels, legend, title, stem=out_dir / key)
        out.append(FigureFile(key, title, files, len(merges) + (1 if base_job else 0)))
    return out
