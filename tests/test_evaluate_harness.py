"""evaluate_model: in-memory vs saved models, determinism, provenance, limit, n-shot rules."""

from __future__ import annotations

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

    from_memory = evaluate_model(
        merged, smoke_suite, tokenizer=tokenizer, dtype="float32", device="cpu", limit=20
    )
    from_disk = evaluate_model(saved, smoke_suite, dtype="float32", device="cpu", limit=20)
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
