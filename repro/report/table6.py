"""Table 6 of the paper (App. F): the n-fewshot of every evaluation task, rendered from configs/suites.yaml.

The table lists the `paper16` suite in its configured order, under the names the paper prints
(`paper_name`, e.g. headqa for headqa_en), with the n-shot the kit evaluates. Footnotes state the metric
read per task and what the paper's "average accuracy" averages. Reads only the suites file (via the
suite loader of the facts layer, which needs no models or torch); writes paper_artifacts/table6.{md,csv,tex}.

    python -m repro.report.table6 [--suites configs/suites.yaml] [--out paper_artifacts]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.errors import EvaluationError
from repro.facts.paths import PAPER_ARTIFACTS_DIR, REPO_ROOT, repo_path
from repro.facts.suites import DEFAULT_SUITES_PATH, load_suites

DEFAULT_OUT_DIR = repo_path(PAPER_ARTIFACTS_DIR)

CAPTION = (
    "Number of in-context examples (n-fewshot) used for each evaluation task, "
    "following the default configuration of lm-eval-harness."
)


@dataclass(frozen=True)
class Table6:
    headers: tuple[str, str]
    rows: list[tuple[str, int]]
    footnotes: list[str]


def build_table6(suites_path: str | Path = DEFAULT_SUITES_PATH, suite: str = "paper16") -> Table6:
    suites = load_suites(suites_path)
    if suite not in suites:
        raise EvaluationError(f"no suite {suite!r} to render Table 6 from", path=str(suites_path))
    paper = suites[suite]
    rows = [(task.paper_name or task.name, task.num_fewshot) for task in paper.tasks]
    renamed = [f"{t.paper_name} is evaluated as lm-eval task {t.name}" for t in paper.tasks if t.paper_name]
    by_metric: dict[str, list[str]] = {}
    for task in paper.tasks:
        by_metric.setdefault(task.metric, []).append(task.paper_name or task.name)
    metric_text = "; ".join(f"{metric}: {', '.join(names)}" for metric, names in sorted(by_metric.items()))
    footnotes = [
        f"Generated from {_display(suites_path)} (suite {suite}) by repro.report.table6.",
        *(note + "." for note in renamed),
        f"Metric read per task ({metric_text}); groups are aggregated as lm-eval does (size-weighted).",
        f"Average accuracy = unweighted mean of the {len(rows)} task scores.",
    ]
    return Table6(headers=("Task", "n-fewshot"), rows=rows, footnotes=footnotes)


def _display(path: str | Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def to_markdown(table: Table6) -> str:
    lines = [f"Table 6: {CAPTION}", "", f"| {table.headers[0]} | {table.headers[1]} |", "|---|---:|"]
    lines += [f"| `{name}` | {shots} |" for name, shots in table.rows]
    lines += [""] + [f"- {note}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def to_latex(table: Table6) -> str:
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lr}",
        r"\toprule",
        rf"{table.headers[0]} & {table.headers[1]} \\",
        r"\midrule",
        *(rf"\texttt{{{_tex(name)}}} & {shots} \\" for name, shots in table.rows),
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_tex(CAPTION)}}}",
        r"\label{tab:nfewshot}",
        r"\end{table}",
        *(f"% {_tex(note)}" for note in table.footnotes),
    ]
    return "\n".join(lines) + "\n"


def write_table6(out_dir: str | Path = DEFAULT_OUT_DIR, suites_path: str | Path = DEFAULT_SUITES_PATH,
                 suite: str = "paper16") -> list[Path]:  # fmt: skip
    table = build_table6(suites_path, suite)
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / "table6.md", to_markdown(table)),
        atomic_write_text(out_dir / "table6.csv", to_csv(table)),
        atomic_write_text(out_dir / "table6.tex", to_latex(table)),
    ]


def to_csv(table: Table6) -> str:
    return "\n".join([",".join(table.headers), *(f"{name},{shots}" for name, shots in table.rows)]) + "\n"
