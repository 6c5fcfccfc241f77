"""A table as the paper prints it (headers, rows, footnote) and its three files: Markdown, CSV and LaTeX.

Tables 1-3 (repro.report.table1), Tables 4-5 (repro.report.protocol_tables) and the confidence-interval
tables (repro.report.ci_tables) are written through these helpers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from repro.atomic_io import atomic_write_text


@dataclass(frozen=True)
class PaperTable:
    headers: list[str]
    rows: list[list[str]]  # Tables 1-3: [model, method, base accuracy, n=1 cell, n=sizes... cells]
    footnote: str
    grouped: bool = True  # a non-empty first cell starts a group (a rule above it in LaTeX)


def to_markdown(table: PaperTable) -> str:
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines) + f"\n\n{table.footnote}\n"


def to_csv(table: PaperTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return buffer.getvalue()


def latex_escape(text: str) -> str:
    """`text` safe inside a LaTeX tabular (backslash, &, %, _, # escaped; an en dash as --)."""
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text.replace("–", "--")


def to_latex(table: PaperTable) -> str:
    def header(h: str) -> str:
        if h.startswith("n="):
            n, k = h[2:].split(" ")
            return f"$n={n}$ {k}"
        return latex_escape(h)

    spec = "ll" + "r" * (len(table.headers) - 2)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(header(h) for h in table.headers) + r" \\",
             r"\midrule"]
    for row in table.rows:
        if table.grouped and row[0] and row is not table.rows[0]:
            lines.append(r"\midrule")
        lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "% " + latex_escape(table.footnote)]
    return "\n".join(lines) + "\n"


def write_table(table: PaperTable, out_dir: Path, stem: str) -> list[Path]:
    return [
        atomic_write_text(out_dir / f"{stem}.md", to_markdown(table)),
        atomic_write_text(out_dir / f"{stem}.csv", to_csv(table)),
        atomic_write_text(out_dir / f"{stem}.tex", to_latex(table)),
    ]
