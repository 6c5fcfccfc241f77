"""The per-item store and the score-row JSON: compact, deterministic, round-trippable."""

from __future__ import annotations

import gzip

import pytest

from repro.errors import EvaluationError
from repro.evaluate import EvalOutcome, ScoreRow, read_items, write_items
from repro.evaluate.model_identity import evaluation_folder_name, model_content_hash
from repro.evaluate.outcome import encode_items
from repro.evaluate.standalone_store import load_evaluation, store_evaluation


def _outcome() -> EvalOutcome:
    common = dict(
        lm_eval_version="0.4.13", dtype="float16", date="2026-01-01T00:00:00+00:00", model={"base": "b"}
    )
    rows = [
        ScoreRow(task="t1", metric="acc", value=0.5, stderr=0.1, primary=True, n_shot=0, **common),
        ScoreRow(task="t1", metric="acc_norm", value=0.25, stderr=0.1, n_shot=0, **common),
        ScoreRow(task="t2", metric="acc_norm", value=1.0, stderr=0.0, primary=True, n_shot=3, **common),
    ]
    items = {"t2": [("0", 1), ("1", 1)], "t1": [("0", 1), ("1", 0), ("2", 0), ("3", 1)]}
    return EvalOutcome(rows=rows, items=items, item_metric={"t1": "acc", "t2": "acc_norm"}, average=0.75,
                       lm_eval_version="0.4.13", task_hashes={"t1": "h1", "t2": "h2"})  # fmt: skip


def test_items_round_trip_and_are_byte_deterministic(tmp_path):
    outcome = _outcome()
    path = outcome.write_items(tmp_path / "items.json.gz")
    assert read_items(path) == outcome.items
    reordered = dict(reversed(list(outcome.items.items())))
    assert encode_items(reordered, outcome.item_metric) == path.read_bytes()
    assert b'"correct":"1001"' in gzip.decompress(path.read_bytes())


def test_outcome_json_round_trip_and_views():
    outcome = _outcome()
    again = EvalOutcome.from_json(outcome.to_json(), items=outcome.items)
    assert again == outcome
    assert outcome.primary_scores() == {"t1": 0.5, "t2": 1.0}
    assert outcome.metrics_by_task()["t1"] == {
        "acc": 0.5,
        "acc_stderr": 0.1,
        "acc_norm": 0.25,
        "acc_norm_stderr": 0.1,
    }


def test_corrupt_item_store_is_one_clear_error(tmp_path):
    bad = tmp_path / "items.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(EvaluationError, match="not a readable item store"):
        read_items(bad)
    with pytest.raises(EvaluationError, match="item store not found"):
        read_items(tmp_path / "missing.json.gz")
    write_items(bad, {"t": [("0", 1)]})
    assert read_items(bad) == {"t": [("0", 1)]}


def test_standalone_store_folder_is_named_by_content(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    first_hash = model_content_hash(model)
    assert evaluation_folder_name(model) == f"my-model-{first_hash[:12]}"
    folder = store_evaluation(_outcome(), model, tmp_path / "runs")
    assert sorted(p.name for p in folder.iterdir()) == ["items.json.gz", "scores.json"]
    assert load_evaluation(folder) == _outcome()
    (model / "model.safetensors").write_bytes(b"other weights")
    assert model_content_hash(model) != first_hash
    (model / "repro_world.json").write_text("{}")  # provenance notes do not change the identity
    assert evaluation_folder_name(model) == f"my-model-{model_content_hash(model)[:12]}"
