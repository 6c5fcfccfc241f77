"""Figures 3/6 and 4 of the paper, from stored results only.

- `accuracy_vs_n`: per base (one panel each), the mean average accuracy of every method against the number
  of merged checkpoints n (n = 1: the single checkpoints), with the standard deviation over subsets shaded
  and the base model as a horizontal line (the paper's Figures 3 and 6).
- `norm_vs_n`: the mean ‖θ_merged − θ_base‖₂ against n, per method and base, standard deviation shaded
  (Figure 4).
Written as PNG (and PDF) with the Agg backend; no model or GPU is needed.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev

from repro.plan import Plan
from repro.results import ResultsStore


def _series(plan: Plan, store: ResultsStore, value) -> dict:
    """base -> label -> n -> [values] for merge jobs (and label None -> n=1 singles, n=0 base)."""
    finished = store.finished_ids()
    out: dict = {}
    for job in plan.jobs:
        if job.experiment is not None or job.id not in finished:
            continue
        record = store.read_result(job.id)
        v = value(record)
        if v is None:
            continue
        label = job.label if job.kind == "merge" else job.kind
        out.setdefault(job.base, {}).setdefault(label, {}).setdefault(job.n, []).append(v)
    return out


def _figure(series: dict, ylabel: str, path: Path, scale: float, base_line: bool) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = list(series)
    fig, axes = plt.subplots(1, max(len(bases), 1), figsize=(4.2 * max(len(bases), 1), 3.4), squeeze=False)
    for ax, base in zip(axes[0], bases, strict=False):
        by_label = series[base]
        singles = by_label.get("single", {}).get(1, [])
        for label, by_n in by_label.items():
            if label in ("base", "single"):
                continue
            points = dict(by_n)
            if singles and base_line:
                points.setdefault(1, singles)
            ns = sorted(points)
            means = [scale * mean(points[n]) for n in ns]
            stds = [scale * pstdev(points[n]) for n in ns]
            ax.plot(ns, means, marker="o", label=label)
            ax.fill_between(ns, [m - s for m, s in zip(means, stds, strict=True)],
                            [m + s for m, s in zip(means, stds, strict=True)], alpha=0.15)
        if base_line and by_label.get("base"):
            ax.axhline(scale * by_label["base"][0][0], color="black", linestyle="--", linewidth=1, label="base")
        ax.set_xticks(sorted({n for label, by_n in by_label.items() if label != "base" for n in by_n} | (
            {1} if singles and base_line else set())))
        ax.set_title(base)
        ax.set_xlabel("number of merged checkpoints n")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if bases:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        tmp = target.with_name(f".{target.name}.tmp")
        fig.savefig(tmp, dpi=150, format=suffix[1:], metadata={"CreationDate": None} if suffix == ".pdf" else None)
        tmp.replace(target)
        written.append(target)
    plt.close(fig)
    return written


def write_figures(plan: Plan, store: ResultsStore, out_dir: Path) -> list[Path]:
    """figure3_accuracy.{png,pdf} and figure4_norm.{png,pdf} under `out_dir`."""
    accuracy = _series(plan, store, lambda r: r.get("average"))
    norms = _series(plan, store, lambda r: (r.get("merge") or {}).get("task_vector_l2"))
    return [
        *_figure(accuracy, "average accuracy (%)", out_dir / "figure3_accuracy", 100.0, base_line=True),
        *_figure(norms, "‖θ_merged − θ_base‖₂", out_dir / "figure4_norm", 1.0, base_line=False),
    ]
