"""Deterministic figure files: one style, no pyplot state, byte-identical PNG and PDF on every rerender.

- Fonts: DejaVu Sans, shipped with matplotlib (never a system font that differs between machines).
- No timestamps or random ids: PDF `CreationDate` is dropped, PNG metadata holds only `Software`
  (matplotlib's version), SVG ids use a fixed `svg.hashsalt`.
- Figures are `matplotlib.figure.Figure` objects drawn by the Agg canvas: no global pyplot registry.
- Files are written to a temporary sibling and renamed (no half-written figure).

Figure numbers: the paper numbers per-base figure families in a fixed base order (e.g. task-wise
accuracy: Fig. 7 Llama 3.1 8B, 8 Llama 3.2 3B, 9 Qwen3 4B, 10 Qwen3 8B). `figure_numbers` keeps the
paper's number for the paper's bases; any other base (e.g. the smoke world's tiny-llama) takes the
family's first number no paper base of this config uses, in config order, and bases beyond the family's
size get letter suffixes on its last number (10b, 10c, ...). Titles of such figures say so.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

from repro.atomic_io import atomic_write_bytes

FONT = "DejaVu Sans"
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": [FONT],
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "figure.titlesize": 10,
    "svg.hashsalt": "repro",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "path.simplify": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.markersize": 4,
}
DPI = 150
PDF_METADATA = {"CreationDate": None, "ModDate": None}

# The paper's base order of every per-base figure family, and each family's first figure number.
PAPER_BASE_NAMES = {
    "llama-3.2-3b": "Llama 3.2 3B",
    "llama-3.1-8b": "Llama 3.1 8B",
    "qwen3-4b": "Qwen3 4B",
    "qwen3-8b": "Qwen3 8B",
}
FAMILIES = {
    "taskwise": (7, ("llama-3.1-8b", "llama-3.2-3b", "qwen3-4b", "qwen3-8b")),  # Appendix B
    "ties_grid": (13, ("llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b")),  # Appendix C.2
    "cosine": (19, ("llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b")),  # Appendix D
    "layer_signs": (23, ("llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b")),
    "homogeneous": (27, ("qwen3-8b", "qwen3-4b")),  # Appendix E
}


def base_title(base: str) -> str:
    return PAPER_BASE_NAMES.get(base, base)


def figure_numbers(family: str, bases: list[str], first: int | None = None) -> dict[str, str]:
    """Base -> figure number (as text, e.g. "8" or "10b") for a per-base family (see module doc)."""
    start, order = FAMILIES[family]
    start = first if first is not None else start
    slots = [str(start + i) for i in range(len(order))]
    out = {base: slots[order.index(base)] for base in bases if base in order}
    free = [slot for slot in slots if slot not in out.values()]
    extra = 1
    for base in bases:
        if base in out:
            continue
        if free:
            out[base] = free.pop(0)
        else:
            extra += 1
            out[base] = f"{slots[-1]}{chr(ord('a') + extra - 1)}"
    return out


def order_bases(bases, panel_order=()) -> list[str]:
    """`bases` (distinct, in config order) with those named in `panel_order` (the config's
    `report.panel_order`) first, in that order; the rest keep their order."""
    bases = list(dict.fromkeys(bases))
    listed = [base for base in panel_order if base in bases]
    return listed + [base for base in bases if base not in listed]


def figure_key(number: str, name: str) -> str:
    """File stem of a figure: "fig07_taskwise_x", "fig10b_taskwise_y" (two-digit number, letter kept)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"fig{int(digits):02d}{number[len(digits):]}_{name}"


def numbering_note(family: str, base: str, number: str) -> str:
    """'' for a paper base at its paper number; otherwise what the paper's figure of that number shows."""
    start, order = FAMILIES[family]
    if base in order:
        return ""
    digits = "".join(ch for ch in number if ch.isdigit())
    position = int(digits) - start
    if 0 <= position < len(order) and number.isdigit():
        return f" (kit numbering: the paper's Figure {number} shows {base_title(order[position])})"
    return f" (kit numbering: a base beyond the paper's {len(order)})"


@contextlib.contextmanager
def figure(n_panels: int = 1, *, panel_size: tuple[float, float] = (3.6, 3.0), columns: int | None = None,
           ) -> Iterator[tuple[object, list]]:
    """A Figure with `n_panels` axes (flattened, row-major), under the kit's style."""
    # matplotlib: deferred so that importing this module does not load it
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib: deferred so that importing this module does not load it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(1, min(columns or n_panels, n_panels))
    rows = -(-n_panels // columns)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows + 0.7), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
        for extra_axis in axes[n_panels:]:
            extra_axis.set_visible(False)
        yield fig, axes[:n_panels]


def suptitle(fig, title: str) -> None:
    """The figure title, wrapped to the figure's width (nothing is cut off at the edges)."""
    fig.suptitle(textwrap.fill(title, width=max(40, int(fig.get_figwidth() * 12))))


FIGURE_SUFFIXES = (".png", ".pdf")


def figure_files(stem: Path) -> list[Path]:
    """The files `save(fig, stem)` writes, in the order it returns them."""
    stem = Path(stem)
    return [stem.with_name(stem.name + suffix) for suffix in FIGURE_SUFFIXES]


def save(fig, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.pdf deterministically (temp file + rename); returns both paths."""
    # matplotlib: deferred so that importing this module does not load it
    import matplotlib

    metadata = {".png": {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"},
                ".pdf": PDF_METADATA}
    with matplotlib.rc_context(STYLE):
        written = []
        for path in figure_files(stem):
            buffer = io.BytesIO()
            fig.savefig(buffer, format=path.suffix[1:], dpi=DPI, metadata=metadata[path.suffix])
            written.append(atomic_write_bytes(path, buffer.getvalue()))
    return written


def method_colors(labels: list[str]) -> dict[str, str]:
    """A stable color per method label (tab10 in the given order)."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}
