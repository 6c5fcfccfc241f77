"""Long jobs say what they are doing: a merge reports its tensors, the runner's bar names the job's step."""

from __future__ import annotations

from repro.cli import main


def test_merge_reports_every_tensor(tiny_llama_world, tmp_path):
    from repro.merge import merge_checkpoints

    seen = []
    result = merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:2], "task_arithmetic",
                               out_dir=None, progress=lambda done, total: seen.append((done, total)))
    total = len(result.state_dict)
    assert seen == [(k, total) for k in range(1, total + 1)]


def test_grid_merge_reports_its_pass(tiny_llama_world):
    from repro.merge.grid import merge_grid

    seen = []
    merge_grid(tiny_llama_world.base, tiny_llama_world.checkpoints[:3], [[0, 1], [1, 2]], "ties",
               progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))


def test_repro_merge_progress_bar_on_stderr(tiny_llama_world, tmp_path, capsys):
    argv = ["merge", "--base", str(tiny_llama_world.base), "--model", str(tiny_llama_world.checkpoints[0]),
            "--model", str(tiny_llama_world.checkpoints[1]), "--method", "task_arithmetic"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "merging" in err and "tensor" in err
    assert main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "tensor" not in capsys.readouterr().err


def test_runner_status_names_the_step(tiny_llama_world):
    from repro.runner.job_executor import JobExecutor

    shown = []
    executor = JobExecutor.__new__(JobExecutor)  # only the progress helpers are exercised here
    executor.status, executor._status_shown = shown.append, 0.0
    for done in range(1, 101):
        executor._tensor_progress(done, 100)
    assert shown[0] == "merging: tensor 1/100" and shown[-1] == "merging: tensor 100/100"
    assert len(shown) < 10  # throttled: at most twice a second, and the last one


def test_evaluation_announces_its_tasks_and_requests(tiny_llama_world):
    from pathlib import Path

    from repro.evaluate import evaluate_model

    root = Path(__file__).resolve().parents[1]
    shown = []
    evaluate_model(tiny_llama_world.base, ["smoke_antonyms", "smoke_capitals"], include_path=str(root / "tasks" / "smoke"),
                   limit=3, batch_size=2, dtype="float32", show_progress=False, status=shown.append)
    assert shown and all(text.startswith("2 tasks: ") and text.endswith("requests") for text in shown), shown
    assert any("loglikelihood" in text for text in shown)
