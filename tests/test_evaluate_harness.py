"""evaluate_model against the stock lm_eval CLI, in-memory vs saved models, determinism, n-shot rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro.errors import EvaluationError
from repro.evaluate import EvalOutcome, TaskSpec, evaluate_model, load_suites

REPO = Path(__file__).resolve().parents[1]
SMOKE_DIR = REPO / "tasks" / "smoke"
SMOKE_TASKS = ["smoke_arithmetic", "smoke_antonyms", "smoke_capitals"]


@pytest.fixture(scope="module")
def smoke_suite():
    return load_suites(REPO / "configs" / "suites.yaml")["smoke"]


def _stock_lm_eval(model_dir: Path, out_dir: Path) -> tuple[dict, dict]:
    """Run the stock `lm_eval` CLI; return its results JSON and its per-sample records by task."""
    lm_eval = Path(sys.executable).parent / "lm_eval"
    command = [
        str(lm_eval), "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", ",".join(SMOKE_TASKS), "--include_path", str(SMOKE_DIR), "--device", "cpu",
        "--batch_size", "auto", "--output_path", str(out_dir), "--log_samples",
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run(
        command, check=True, capture_output=True, text=True, env=env, cwd=out_dir.parent, timeout=300
    )
    (results_path,) = out_dir.rglob("results_*.json")
    samples = {}
    for task in SMOKE_TASKS:
        (path,) = out_dir.rglob(f"samples_{task}_*.jsonl")
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(results_path.read_text()), samples


def test_repro_evaluate_gives_exactly_the_stock_lm_eval_numbers(tiny_llama_world, tmp_path, capsys):
    from repro.cli import main

    stock, samples = _stock_lm_eval(tiny_llama_world.base, tmp_path / "stock")
    code = main(
        ["evaluate", "--model", str(tiny_llama_world.base), "--tasks", ",".join(SMOKE_TASKS),
         "--include-path", str(SMOKE_DIR), "--dtype", "float32", "--device", "cpu", "--json",
         "--out-dir", str(tmp_path / "store")]
    )  # fmt: skip
    assert code == 0
    ours = json.loads(capsys.readouterr().out)
    for task in SMOKE_TASKS:
        theirs = stock["results"][task]
        for metric in ("acc", "acc_norm"):
            assert ours[task][metric] == theirs[f"{metric},none"], (task, metric)
            assert ours[task][f"{metric}_stderr"] == theirs[f"{metric}_stderr,none"], (task, metric)

    # The stored per-item results and task hashes agree with lm_eval's logged samples.
    from repro.evaluate.standalone_store import load_evaluation

    (folder,) = (tmp_path / "store").iterdir()
    assert folder.name.startswith("base-")
    stored = load_evaluation(folder)
    for task in SMOKE_TASKS:
        expected = sorted((str(s["doc_id"]), int(s["acc"])) for s in samples[task])
        assert sorted(stored.items[task]) == expected
        assert stored.task_hashes[task] == stock["task_hashes"][task]


def _merged_model(world, dtype):
    """Base + mean task vector of three checkpoints, cast to `dtype` (a stand-in for a real merge)."""
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(world.base, dtype=torch.float32)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    checkpoints = [
        AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).state_dict()
        for p in world.checkpoints[:3]
    ]
    for name, tensor in state.items():
        tensor += sum(ckpt[name] - tensor for ckpt in checkpoints) / len(checkpoints)
    base.load_state_dict(state)
    return base.to(dtype)


def test_in_memory_and_saved_merged_model_score_identically(tiny_qwen3_world, smoke_suite, tmp_path):
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_world.base)
    merged = _merged_model(tiny_qwen3_world, torch.bfloat16)
    saved = tmp_path / "merged"
    merged.save_pretrained(saved)
    tokenizer.save_pretrained(saved)

    from_memory = evaluate_model(merged, smoke_suite, tokenizer=tokenizer, dtype="float32", device="cpu")
    from_disk = evaluate_model(saved, smoke_suite, dtype="float32", device="cpu")
    assert from_memory.metrics_by_task() == from_disk.metrics_by_task()
    assert from_memory.items == from_disk.items
    assert from_memory.average == from_disk.average
    assert from_memory.rows[0].model["in_memory"] is True


def test_in_memory_model_needs_a_tokenizer(tiny_llama_world, smoke_suite):
    import torch

    model = _merged_model(tiny_llama_world, torch.float32)
    model.name_or_path = ""
    with pytest.raises(EvaluationError, match="tokenizer"):
        evaluate_model(model, smoke_suite, device="cpu")


def test_results_are_deterministic_and_items_byte_identical(tiny_llama_world, smoke_suite, tmp_path):
    first = evaluate_model(tiny_llama_world.base, smoke_suite, device="cpu", identity={"name": "base"})
    second = evaluate_model(tiny_llama_world.base, smoke_suite, device="cpu", identity={"name": "base"})
    first.write_items(tmp_path / "a.json.gz")
    second.write_items(tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()

    def without_dates(outcome: EvalOutcome) -> dict:
        data = outcome.to_json()
        for row in data["rows"]:
            row.pop("date")
        return data

    assert without_dates(first) == without_dates(second)
    # What the runner stores: provenance on every row, the unweighted average of the primary metrics.
    row = next(r for r in first.rows if r.primary)
    assert (row.dtype, row.n_shot, row.lm_eval_version, row.model) == (
        "float32",
        0,
        first.lm_eval_version,
        {"name": "base"},
    )
    assert row.task_hash == first.task_hashes[row.task] and row.task_version == "1.0"
    scores = first.primary_scores()
    assert list(scores) == SMOKE_TASKS
    assert first.average == pytest.approx(sum(scores.values()) / 3)
    assert all(len(first.items[t]) == 40 for t in SMOKE_TASKS)
    assert all(first.item_metric[t] == "acc" for t in SMOKE_TASKS)
    assert scores["smoke_capitals"] == sum(flag for _, flag in first.items["smoke_capitals"]) / 40


def test_limit_restricts_items_and_is_recorded(tiny_llama_world, smoke_suite):
    outcome = evaluate_model(tiny_llama_world.base, smoke_suite, device="cpu", limit=5)
    assert {len(pairs) for pairs in outcome.items.values()} == {5}
    assert {row.limit for row in outcome.rows} == {5}
    assert {row.n_items for row in outcome.rows} == {5}


def test_a_yaml_that_pins_zero_shots_cannot_be_overridden(tiny_llama_world):
    spec = TaskSpec(name="smoke_arithmetic", num_fewshot=2)
    with pytest.raises(EvaluationError, match="num_fewshot"):
        evaluate_model(tiny_llama_world.base, [spec], include_path=SMOKE_DIR, device="cpu", dtype="float32")


def test_not_a_model_directory(tmp_path, smoke_suite):
    with pytest.raises(EvaluationError, match="config.json"):
        evaluate_model(tmp_path, smoke_suite, device="cpu")
