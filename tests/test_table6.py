"""Table 6 (n-fewshot per task) rendered from configs/suites.yaml, without models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from repro.errors import EvaluationError
from repro.report.table6 import build_table6, write_table6

REPO = Path(__file__).resolve().parents[1]

# Table 6 of the paper, row by row.
PAPER_TABLE6 = [
    ("arc_easy", 0), ("arc_challenge", 0), ("boolq", 0), ("commonsense_qa", 0), ("hellaswag", 0),
    ("winogrande", 0), ("piqa", 0), ("openbookqa", 0), ("headqa", 0), ("prost", 0), ("truthfulqa_mc1", 0),
    ("medmcqa", 0), ("leaderboard_gpqa", 0), ("leaderboard_bbh", 3), ("mmlu", 0), ("leaderboard_mmlu_pro", 5),
]  # fmt: skip


def test_rows_are_the_papers_table6():
    table = build_table6(REPO / "configs" / "suites.yaml")
    assert table.rows == PAPER_TABLE6
    notes = " ".join(table.footnotes)
    assert "headqa is evaluated as lm-eval task headqa_en" in notes
    assert "acc_norm: leaderboard_gpqa, leaderboard_bbh" in notes and "unweighted mean of the 16" in notes


def test_markdown_and_latex_are_written(tmp_path):
    paths = write_table6(tmp_path, REPO / "configs" / "suites.yaml")
    assert [p.name for p in paths] == ["table6.md", "table6.csv", "table6.tex"]
    markdown, _, latex = (p.read_text() for p in paths)
    assert "| `leaderboard_bbh` | 3 |" in markdown and "| `leaderboard_mmlu_pro` | 5 |" in markdown
    assert r"\texttt{leaderboard\_mmlu\_pro} & 5 \\" in latex and r"\begin{tabular}{lr}" in latex
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "repro", "report", "table6", "--out", str(tmp_path / "again")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "table6.md").read_text() == markdown


def test_committed_artifact_is_up_to_date():
    committed = REPO / "paper_artifacts" / "table6.md"
    from repro.report.table6 import to_markdown

    assert committed.read_text() == to_markdown(build_table6(REPO / "configs" / "suites.yaml"))


def test_unknown_suite_is_a_clear_error():
    with pytest.raises(EvaluationError, match="no suite 'paper17'"):
        build_table6(REPO / "configs" / "suites.yaml", suite="paper17")


def test_rendering_needs_no_torch():
    code = "import sys, repro.report.table6 as t; t.build_table6(); print('torch' in sys.modules, 'lm_eval' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
