"""Unknown task names, hub datasets while offline, gated datasets: one clear EvaluationError each."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.errors import EvaluationError
from repro.evaluate import TaskSpec, evaluate_model

SMOKE_DIR = Path(__file__).resolve().parents[1] / "tasks" / "smoke"


@pytest.fixture(autouse=True)
def _offline_without_token(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("repro.evaluate.task_errors.has_token", lambda: False)


def test_unknown_task_suggests_close_names(tiny_llama_world):
    with pytest.raises(EvaluationError) as info:
        evaluate_model(tiny_llama_world.base, ["smoke_arithmatic"], include_path=SMOKE_DIR, device="cpu")
    message = str(info.value)
    assert (
        "unknown lm-eval task 'smoke_arithmatic'" in message and "did you mean: smoke_arithmetic" in message
    )
    with pytest.raises(EvaluationError, match="did you mean: .*hellaswag"):
        evaluate_model(tiny_llama_world.base, ["hellaswg"], device="cpu")


def test_hub_task_offline_is_one_clear_message(tiny_llama_world):
    with pytest.raises(EvaluationError) as info:
        evaluate_model(tiny_llama_world.base, ["arc_easy"], device="cpu")
    message = str(info.value)
    assert "'arc_easy'" in message and "allenai/ai2_arc" in message and "not reachable" in message
    assert "\n" not in message


def test_gated_dataset_without_token_says_so(tiny_llama_world):
    for spec in (
        TaskSpec(name="leaderboard_gpqa", metric="acc_norm", gated=True),
        TaskSpec(name="leaderboard_gpqa_main"),
    ):
        with pytest.raises(EvaluationError, match="gated dataset: accept its licence .* HF_TOKEN"):
            evaluate_model(tiny_llama_world.base, [spec], device="cpu")


def test_missing_include_path(tiny_llama_world, tmp_path):
    with pytest.raises(EvaluationError, match="task folder does not exist"):
        evaluate_model(tiny_llama_world.base, ["x"], include_path=tmp_path / "nope", device="cpu")


def test_cli_prints_one_line_and_exits_2(tiny_llama_world, capsys):
    from repro.cli import main

    code = main(["evaluate", "--model", str(tiny_llama_world.base), "--tasks", "smoke_arithmatic",
                 "--include-path", str(SMOKE_DIR), "--no-store"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: tasks: unknown lm-eval task 'smoke_arithmatic'")
    assert main(["evaluate", "--model", str(tiny_llama_world.base), "--suite", "nope", "--no-store"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err


def test_fetch_suite_datasets_loads_every_task(capsys):
    from repro.cli import main
    from repro.evaluate import load_suites
    from repro.evaluate.task_loading import fetch_suite_datasets

    smoke = load_suites()["smoke"]
    assert fetch_suite_datasets(smoke) == {name: 40 for name in smoke.task_names}
    assert main(["data", "fetch", "--suite", "smoke"]) == 0
    assert "smoke: 3 tasks, 120 items cached" in capsys.readouterr().out
    with pytest.raises(EvaluationError, match="not reachable"):
        fetch_suite_datasets(["arc_easy"])
