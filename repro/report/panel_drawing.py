"""Line-plot figures from plain data: `Panel`s of `Line`s of `Point`s, drawn side by side by `draw_panels`.

The drawing inputs are plain dataclasses (picklable), and this module imports only the figure style (and
matplotlib when it draws), so a figure can be drawn in a worker process (repro.report.figure_pool) as well
as here. Figures 3, 4, 6-10 (repro.report.figures) and 11-18 (repro.report.sweep_figures) are drawn with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, pstdev

from repro.report.figure_style import figure, method_colors, save, suptitle


@dataclass
class Point:
    x: float
    mean: float
    std: float
    count: int
    interval: tuple[float, float] | None = None  # drawn as an error bar when set

    @classmethod
    def of(cls, x: float, values: list[float], scale: float = 1.0) -> Point:
        return cls(x, scale * mean(values), scale * pstdev(values), len(values))


@dataclass
class Line:
    label: str
    points: list[Point]
    style: str = "-"
    marker: str = "o"
    point_labels: list[str] | None = None  # text written beside each point (e.g. its λ)


@dataclass
class Panel:
    title: str
    lines: list[Line]
    reference: float | None = None  # the base model, dashed
    reference_label: str = "base model"
    xticks: list[float] | None = None  # None: the x values of the points
    auto_xticks: bool = False  # let matplotlib place the ticks (continuous x such as a norm)
    xlog: bool = False
    notes: list[str] = field(default_factory=list)



def draw_panels(panels: list[Panel], stem: Path, *, title: str, xlabel: str, ylabel: str,
                columns: int | None = None, colors: dict[str, str] | None = None,
                panel_size: tuple[float, float] = (3.6, 3.0)) -> list[Path]:
    """Render panels side by side (or in `columns`), one shared legend, the title on top."""
    labels = list(dict.fromkeys(line.label for panel in panels for line in panel.lines))
    colors = colors or method_colors(labels)
    with figure(len(panels), columns=columns, panel_size=panel_size) as (fig, axes):
        width = fig.get_figwidth()
        for ax, panel in zip(axes, panels, strict=True):
            for line in panel.lines:
                xs = [p.x for p in line.points]
                ys = [p.mean for p in line.points]
                color = colors.get(line.label)
                ax.plot(xs, ys, linestyle=line.style, marker=line.marker, color=color, label=line.label)
                if any(p.std for p in line.points):
                    low, high = (0.0, 100.0) if "(%)" in ylabel else (float("-inf"), float("inf"))
                    ax.fill_between(xs, [max(low, p.mean - p.std) for p in line.points],  # an accuracy stays in 0..100
                                    [min(high, p.mean + p.std) for p in line.points], color=color, alpha=0.15,
                                    linewidth=0)
                if line.point_labels:
                    ax.margins(x=0.12, y=0.08)  # room for the labels at the edges
                for point, text in zip(line.points, line.point_labels or [], strict=False):
                    ax.annotate(text, (point.x, point.mean), textcoords="offset points", xytext=(3, 3), fontsize=6,
                                color=color)
                intervals = [p for p in line.points if p.interval is not None]
                if intervals:
                    ax.errorbar([p.x for p in intervals], [p.mean for p in intervals], fmt="none", ecolor=color,
                                capsize=2, yerr=[[p.mean - p.interval[0] for p in intervals],
                                                 [p.interval[1] - p.mean for p in intervals]])
            if panel.reference is not None:
                ax.axhline(panel.reference, color="black", linestyle="--", linewidth=1, label=panel.reference_label)
            if panel.xlog:
                # matplotlib: deferred so that importing this module does not load it
                from matplotlib.ticker import FuncFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            xticks = panel.xticks or sorted({p.x for line in panel.lines for p in line.points})
            if xticks and not panel.auto_xticks and not panel.xlog:
                ax.set_xticks(xticks)
                ax.set_xticklabels([f"{x:g}" for x in xticks])
            ax.set_title(panel.title)
            ax.set_xlabel(f"{xlabel}, log scale" if panel.xlog else xlabel)
            ax.set_ylabel(ylabel)
        handles, names = {}, []
        for ax in axes:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                if name not in handles:
                    handles[name] = handle
                    names.append(name)
        if names:
            fig.legend([handles[n] for n in names], names, loc="outside lower center", frameon=False,
                       ncol=max(1, min(len(names), int(width / 1.5))))
        suptitle(fig, title)
        return save(fig, stem)
