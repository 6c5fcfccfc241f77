"""`repro evaluate --compare-backends`: stock hf at two batch sizes and shared, per-task disagreements and
the agreement rule (shared may disagree with stock no more than stock with itself, plus a margin)."""

from __future__ import annotations

import random

import pytest

from repro.cli import main as repro_main
from repro.evaluate import TaskSpec
from repro.evaluate.backend_agreement import (
    AgreementReport,
    compare_backend_agreement,
    compare_samples,
    format_agreement,
    margin_items,
)
from tests.test_evaluate_shared_context import _write_tasks


def _sample(values, choices=("a", "bb", "ccc")):
    return {"resps": [[(v, False)] for v in values], "arguments": [("ctx", c) for c in choices]}


def _runs(n_items, stock_b_flips=(), shared_flips=()):
    good, flipped = [-1.0, -2.0, -3.0], [-2.5, -2.0, -3.0]  # flipped: argmax 1 instead of 0
    runs = {"stock_a": {"t": {}}, "stock_b": {"t": {}}, "shared": {"t": {}}}
    for i in range(n_items):
        doc = str(i)
        runs["stock_a"]["t"][doc] = _sample(good)
        runs["stock_b"]["t"][doc] = _sample(flipped if i in stock_b_flips else good)
        runs["shared"]["t"][doc] = _sample(flipped if i in shared_flips else good)
    return runs


def _report(runs):
    return AgreementReport(compare_samples(runs, {}), (16, 1), "bfloat16", "cpu", None)


def test_margin_is_one_percent_with_a_floor_of_one_item():
    assert [margin_items(n) for n in (1, 50, 100, 101, 1000)] == [1, 1, 1, 2, 10]


def test_rule_passes_within_stock_noise_plus_margin_and_fails_beyond():
    report = _report(_runs(200, stock_b_flips={1, 2, 3}, shared_flips={4, 5, 6, 7, 8}))  # 5 <= 3 + 2
    task = report.tasks["t"]
    assert (task.items, task.stock_vs_stock, task.stock_vs_shared) == (200, ["1", "2", "3"], ["4", "5", "6", "7", "8"])
    assert task.passed and report.passed
    failing = _report(_runs(200, stock_b_flips={1}, shared_flips={4, 5, 6, 7}))  # 4 > 1 + 2
    assert not failing.passed and "t: shared disagrees with stock on 4 of 200 items" in failing.failures()[0]
    assert "FAILED" in format_agreement(failing) and "PASSED" in format_agreement(report)


def test_length_normalized_prediction_counts_as_a_prediction():
    runs = _runs(10)
    # same raw argmax (choice 0), but per character choice 2 wins in shared only
    runs["shared"]["t"]["3"] = _sample([-1.0, -2.9, -2.95])
    assert _report(runs).tasks["t"].stock_vs_shared == ["3"]


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agreement-tasks")
    return folder, _write_tasks(folder, seed=random.randrange(10**6))


def test_tiny_model_agrees_in_float32(tiny_world, local_tasks):
    folder, names = local_tasks
    mc = [n for n in names if n != "sc_loglikelihood"]
    report = compare_backend_agreement(tiny_world.base, [TaskSpec(name=n) for n in mc], include_path=folder,
                                       dtype="float32", batch_sizes=(5, 1))
    assert sorted(report.tasks) == sorted(mc)
    assert all(t.items == 12 for t in report.tasks.values())
    assert report.passed, format_agreement(report)
    assert all(t.max_abs_diff_shared < 1e-3 for t in report.tasks.values())
    assert set(next(iter(report.tasks.values())).accuracy) == {"stock_a", "stock_b", "shared"}


def test_cli_exit_status_follows_the_rule(tiny_llama_world, local_tasks, tmp_path, capsys, monkeypatch):
    folder, names = local_tasks
    args = ["evaluate", "--model", str(tiny_llama_world.base), "--tasks", "sc_letters", "--include-path", str(folder),
            "--dtype", "float32", "--compare-backends", "--batch-sizes", "4,1", "--report", str(tmp_path / "r.json")]
    assert repro_main(args) == 0
    out = capsys.readouterr().out
    assert "| sc_letters | 12 |" in out and "PASSED" in out and (tmp_path / "r.json").is_file()
    import repro.evaluate.backend_agreement as agreement

    monkeypatch.setattr(agreement, "compare_backend_agreement",
                        lambda *a, **k: _report(_runs(100, shared_flips={1, 2, 3})))
    assert repro_main(args) == 1
    assert "FAILED" in capsys.readouterr().out
    assert repro_main(args[:-4] + ["--batch-sizes", "4,4"]) == 2
    assert "--batch-sizes must be two different positive integers" in capsys.readouterr().err
