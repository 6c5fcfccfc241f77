"""Per-base panels follow the config's `report.panel_order` (the paper's captions: LLAMA 3.2 3B, QWEN3 4B,
LLAMA 3.1 8B, QWEN3 8B from left to right), legends the table's method order."""

from pathlib import Path

import pytest

from repro.errors import ConfigError
from repro.facts.config import load_config
from repro.report.figure_style import base_title, order_bases
from repro.report.figures import accuracy_panels, norm_panels
from repro.results import ResultRecord
from tests.item_results import build_plan

ROOT = Path(__file__).resolve().parents[1]
PAPER_ORDER = ["llama-3.2-3b", "qwen3-4b", "llama-3.1-8b", "qwen3-8b"]
CAPTION = "From left to right, models are LLAMA 3.2 3B, QWEN3 4B, LLAMA 3.1 8B, QWEN3 8B"


def _records(plan):
    return {job.id: ResultRecord(job, average=0.5, merge={"task_vector_l2": 1.0} if job.kind == "merge" else None)
            for job in plan.jobs}


def test_order_bases_puts_listed_bases_first():
    assert order_bases(["a", "b", "c", "a"], ["c", "x", "a"]) == ["c", "a", "b"]
    assert order_bases(["a", "b"]) == ["a", "b"]


def test_figure_panels_follow_the_panel_order():
    config_order = ("llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b")  # the configs' base order
    plan = build_plan(bases=config_order, methods=(("task_arithmetic", "TA"), ("ties", "TIES")))
    records = _records(plan)
    titles = [p.title for p in accuracy_panels(plan, records, ["TA", "TIES"], order=PAPER_ORDER)]
    assert titles == [base_title(b) for b in PAPER_ORDER]
    assert [p.title for p in norm_panels(plan, records, ["TA", "TIES"], PAPER_ORDER)] == titles
    assert [p.title for p in accuracy_panels(plan, records, ["TA"])] == [base_title(b) for b in config_order]
    # legend: the lines in the table's method order
    assert [line.label for line in accuracy_panels(plan, records, ["TIES", "TA"], order=PAPER_ORDER)[0].lines] == \
        ["TIES", "TA"]


def test_paper_configs_state_the_captions_order():
    assert CAPTION in (ROOT / "configs/paper.yaml").read_text()  # the caption quoted beside the setting
    for name in ("paper", "ablation_sb_beta", "ablation_ta_lambda", "ablation_ta_lambda_nonorm",
                 "ablation_ties_density", "ablation_ties_grid", "paper_tasb_nonorm"):
        config = load_config(ROOT / "configs" / f"{name}.yaml").config
        assert config.report.panel_order == PAPER_ORDER, name


def test_a_repeated_panel_base_is_a_config_error(tmp_path):
    text = (ROOT / "configs/paper.yaml").read_text().replace(
        "panel_order: [llama-3.2-3b, qwen3-4b,", "panel_order: [llama-3.2-3b, llama-3.2-3b,")
    path = tmp_path / "paper.yaml"
    path.write_text(text)
    (tmp_path / "checkpoints.lock").write_text((ROOT / "checkpoints.lock").read_text())
    (tmp_path / "suites.yaml").write_text((ROOT / "configs/suites.yaml").read_text())
    with pytest.raises(ConfigError, match="panel_order.*llama-3.2-3b more than once"):
        load_config(path)
