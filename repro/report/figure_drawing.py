"""Heatmap and bar figures from plain data, drawn here or in a worker process (repro.report.figure_pool).

- `draw_cosine` and `draw_layer_signs`: Figures 19-22 and 23-26 (repro.report.geometry_figures computes
  the cosines and the per-block sign counts from the stored Gram matrices);
- `draw_bar_panels`: Figures 27-28 (repro.report.homogeneous_figures builds one `BarPanel` per suite).

Inputs are lists, numbers, strings and the small dataclasses below; the module imports only the figure
style (matplotlib and numpy when it draws), so a worker process does not load the results or the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.report.figure_style import figure, save, suptitle

INDEX_AXIS = "checkpoint index (Appendix A order)"


def heatmap(ax, matrix, labels, *, vmin, vmax, cmap, fmt, title):
    """`matrix` (None: undefined, shown as n/a) on `ax`, every cell written with `fmt`; returns the image."""
    # numpy: deferred so that importing this module does not load it
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels)
    ax.grid(False)
    ax.set_xlabel(INDEX_AXIS)
    ax.set_ylabel(INDEX_AXIS)
    ax.set_title(title)
    small = len(labels) > 8
    diverging = vmin < 0
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            text = "n/a" if v is None else fmt(v)
            level = 0.0 if v is None else float(image.norm(v))
            dark = abs(level - 0.5) > 0.3 if diverging else level > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=4.5 if small else 6,
                    color="white" if dark else "black")
    return image


def draw_cosine(cos: list[list[float | None]], labels: list[str], scale: float, title: str, *, stem: Path
                ) -> list[Path]:
    """One heatmap of the pairwise cosines `cos` (None: undefined), colour scale ±`scale`."""
    with figure(1, panel_size=(6.2, 5.4)) as (fig, [ax]):
        image = heatmap(ax, cos, labels, vmin=-scale, vmax=scale, cmap="RdBu_r",
                        fmt=lambda v: f"{round(v, 2) + 0.0:.2f}",
                        title=f"colour scale ±{scale:.3g} (largest |cos| off the diagonal)")
        fig.colorbar(image, ax=ax, label="cosine similarity (dimensionless)")
        suptitle(fig, title)
        return save(fig, stem)


def draw_layer_signs(counts: dict[str, list[list[int]]], labels: list[str], n_layers: int, tolerance: float,
                     title: str, *, stem: Path) -> list[Path]:
    """Three heatmaps: per pair, the number of blocks with positive, negative and zero cosine (`counts`)."""
    # matplotlib: deferred so that importing this module does not load it
    from matplotlib.ticker import MaxNLocator

    with figure(3, panel_size=(5.0, 4.6)) as (fig, axes):
        for ax, (name, cmap) in zip(axes, (("positive", "Reds"), ("negative", "Blues"), ("zero", "Greys")),
                                    strict=True):
            what = {"positive": f"cos > {tolerance:g}", "negative": f"cos < −{tolerance:g}",
                    "zero": f"|cos| ≤ {tolerance:g} or zero vector"}[name]
            image = heatmap(ax, counts[name], labels, vmin=0, vmax=max(n_layers, 1), cmap=cmap,
                            fmt=lambda v: f"{v:d}", title=f"{name}: {what}")
            bar = fig.colorbar(image, ax=ax, label=f"number of blocks (of {n_layers})", shrink=0.8)
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
        suptitle(fig, title)
        return save(fig, stem)


@dataclass
class Bars:
    """One experiment's bars in a panel: heights `ys` (%) at `xs`, one colour, one legend entry."""

    xs: list[float]
    ys: list[float]
    width: float
    color: str
    label: str


@dataclass
class BarPanel:
    """One suite: its bars (per experiment) and the base model's score (%), drawn dashed."""

    suite: str
    bars: list[Bars]
    reference: float | None = None


def draw_bar_panels(panels: list[BarPanel], labels: list[str], legend: list[str], title: str, *, stem: Path
                    ) -> list[Path]:
    """Bar panels side by side, the methods `labels` on the x axis, one legend (entries in `legend` order,
    then the base model)."""
    with figure(len(panels), panel_size=(max(3.6, 0.9 * len(labels) + 1.5), 3.4)) as (fig, axes):
        for ax, panel in zip(axes, panels, strict=True):
            for bars in panel.bars:
                ax.bar(bars.xs, bars.ys, width=bars.width, color=bars.color, label=bars.label)
            if panel.reference is not None:
                ax.axhline(panel.reference, color="black", linestyle="--", linewidth=1, label="base model")
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, ha="right")
            ax.set_xlabel("merge method")
            ax.set_ylabel(f"{panel.suite} suite average accuracy (%)")
            ax.set_title(f"{panel.suite} tasks (Table 5)")
        handles: dict = {}
        for ax in axes:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(name, handle)
        handles = {name: handles[name] for name in [*legend, "base model"] if name in handles}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", frameon=False,
                   ncol=len(handles))
        suptitle(fig, title)
        return save(fig, stem)
