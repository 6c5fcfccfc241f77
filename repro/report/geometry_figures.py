"""Appendix D: Figures 19-22 (pairwise cosine similarity of the task vectors, 12 x 12 heatmap per base)
and Figures 23-26 (per pair, the number of transformer blocks whose task vectors have a positive,
negative or numerically zero cosine), from the stored Gram matrices of the `geometry` jobs.

A block counts as zero when |cos| <= the config's `geometry.zero_tolerance`, or when either task vector
is exactly zero in it (the cosine is undefined); the tolerance is printed on the figure. Axis indices are
the checkpoint indices of Appendix A (the pool order of checkpoints.lock). Each figure's numbers are also
written as CSV beside it. The heatmaps are drawn by repro.report.figure_drawing (through a `FigureRenderer`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.plan import JobKind
from repro.report.figure_drawing import draw_cosine, draw_layer_signs
from repro.report.figure_pool import FigureRenderer
from repro.report.figure_style import base_title, figure_key, figure_numbers, numbering_note
from repro.report.figures import FigureFile


def cosine_matrix(gram: list[list[float]]) -> list[list[float | None]]:
    """cos(i, j) = G_ij / sqrt(G_ii G_jj); None where a task vector is exactly zero."""
    k = len(gram)
    out = []
    for i in range(k):
        row = []
        for j in range(k):
            denominator = (gram[i][i] * gram[j][j]) ** 0.5
            row.append(None if denominator == 0 else max(-1.0, min(1.0, gram[i][j] / denominator)))
        out.append(row)
    return out


def layer_sign_counts(layers: dict[str, list[list[float]]], tolerance: float) -> dict[str, list[list[int]]]:
    """Per pair (i, j): the number of blocks with cos > tol ("positive"), cos < -tol ("negative") and
    |cos| <= tol or undefined ("zero")."""
    k = len(next(iter(layers.values()))) if layers else 0
    counts = {key: [[0] * k for _ in range(k)] for key in ("positive", "negative", "zero")}
    for gram in layers.values():
        cos = cosine_matrix(gram)
        for i in range(k):
            for j in range(k):
                c = cos[i][j]
                key = "zero" if c is None or abs(c) <= tolerance else ("positive" if c > 0 else "negative")
                counts[key][i][j] += 1
    return counts


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def geometry_figures(loaded, plan, records, out_dir: Path, renderer: FigureRenderer | None = None
                     ) -> list[FigureFile]:
    """Figures 19-26 of the geometry jobs that have results, and their CSVs; `renderer` draws them (default:
    here)."""
    renderer = renderer or FigureRenderer(jobs=1)
    settings = loaded.config.geometry
    tolerance = settings.zero_tolerance if settings is not None else 1e-6
    jobs = [job for job in plan.of_kind(JobKind.GEOMETRY) if job.id in records]
    bases = [job.base for job in jobs]
    cosine_numbers = figure_numbers("cosine", bases)
    sign_numbers = figure_numbers("layer_signs", bases)
    out: list[FigureFile] = []
    for job in jobs:
        geometry = records[job.id].geometry
        labels = [str(i) for i in job.subset]
        cos = cosine_matrix(geometry["total"])
        off = [abs(c) for i, row in enumerate(cos) for j, c in enumerate(row) if i != j and c is not None]
        scale = max(off, default=1.0) or 1.0
        number = cosine_numbers[job.base]
        key = figure_key(number, f"cosine_{job.base}")
        title = (f"Figure {number}: pairwise cosine similarity of the task vectors of {base_title(job.base)}"
                 f"{numbering_note('cosine', job.base, number)}")
        files = renderer.draw(draw_cosine, cos, labels, scale, title, stem=out_dir / key)
        files.append(atomic_write_text(out_dir / f"{key}.csv", _csv(
            [["index", *labels]] + [[labels[i]] + ["" if c is None else repr(c) for c in row] for i, row in enumerate(cos)])))
        out.append(FigureFile(key, title, files, 1))

        counts = layer_sign_counts(geometry["layers"], tolerance)
        n_layers = len(geometry["layers"])
        number = sign_numbers[job.base]
        key = figure_key(number, f"layer_signs_{job.base}")
        title = (f"Figure {number}: number of transformer blocks with positive / negative cosine, per pair of "
                 f"task vectors of {base_title(job.base)}{numbering_note('layer_signs', job.base, number)}")
        files = renderer.draw(draw_layer_signs, counts, labels, n_layers, tolerance, title, stem=out_dir / key)
        rows = [["i", "j", "positive", "negative", "zero", "blocks", "total_cosine"]]
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                rows.append([labels[i], labels[j], counts["positive"][i][j], counts["negative"][i][j],
                             counts["zero"][i][j], n_layers, "" if cos[i][j] is None else repr(cos[i][j])])
        files.append(atomic_write_text(out_dir / f"{key}.csv", _csv(rows)))
        out.append(FigureFile(key, title, files, 1))
    return out
