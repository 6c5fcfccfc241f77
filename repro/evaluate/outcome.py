"""What one evaluation produces: score rows with provenance, and the per-item correctness store.

`ScoreRow` is one (task, metric) value with everything needed to trust it later: model identity,
n-shot, limit, lm-eval version, task version and content hash, dtype and date. `EvalOutcome.items`
holds, per leaf task, which documents the model got right, so that two models can be compared item
by item (paired statistics). The item store is deterministic: same model + tasks -> same bytes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from repro.atomic_io import atomic_write_bytes
from repro.errors import EvaluationError

ITEMS_FORMAT = "repro-items/1"


class ScoreRow(BaseModel):
    """One metric of one task for one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: dict[str, Any] = Field(
        default_factory=dict
    )  # identity: base, method, params, subset, revisions...
    task: str
    metric: str
    value: float
    stderr: float | None = None
    primary: bool = False  # the metric the suite counts as this task's accuracy
    parent: str | None = None  # the group a leaf task belongs to, when the suite named the group
    n_shot: int | None = None
    n_items: int | None = None
    limit: float | None = None
    lm_eval_version: str
    task_version: str | None = None
    task_hash: str | None = None
    dtype: str
    batch_size: str | None = None
    backend: str | None = None  # lm-eval model: "shared" (shared-context HF), "hf" (stock) or "vllm"
    date: str


class EvalOutcome(BaseModel):
    """Scores and per-item results of one model on one list of tasks."""

    model_config = ConfigDict(extra="forbid")

    rows: list[ScoreRow]
    items: dict[str, list[tuple[str, int]]] = Field(default_factory=dict)  # leaf task -> [(doc_id, 0/1)]
    item_metric: dict[str, str] = Field(default_factory=dict)  # leaf task -> metric the 0/1 refers to
    average: float | None = None  # unweighted mean of the requested tasks' primary metric
    lm_eval_version: str
    task_hashes: dict[str, str] = Field(default_factory=dict)
    forward_tokens: int | None = None  # token positions the model computed (shared backend counts them)
    # what the run actually used (repro.evaluate.run_facts): seeds set, batch size, device, tokenizer identity
    run: dict[str, Any] = Field(default_factory=dict)

    def primary_scores(self) -> dict[str, float]:
        """Requested task -> its primary metric value (what `average` averages)."""
        return {row.task: row.value for row in self.rows if row.primary}

    def metrics_by_task(self) -> dict[str, dict[str, float | None]]:
        """Task -> {metric: value, metric_stderr: stderr}, e.g. for `repro evaluate --json`."""
        table: dict[str, dict[str, float | None]] = {}
        for row in self.rows:
            entry = table.setdefault(row.task, {})
            entry[row.metric] = row.value
            entry[f"{row.metric}_stderr"] = row.stderr
        return table

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (items excluded: they go to the compact item store)."""
        return self.model_dump(mode="json", exclude={"items"})

    @classmethod
    def from_json(
        cls, data: dict[str, Any] | str, items: dict[str, list[tuple[str, int]]] | None = None
    ) -> EvalOutcome:
        if isinstance(data, str):
            data = json.loads(data)
        return cls.model_validate({**data, "items": items or {}})

    def write_items(self, path: str | Path) -> Path:
        return write_items(path, self.items, self.item_metric)

    @staticmethod
    def read_items(path: str | Path) -> dict[str, list[tuple[str, int]]]:
        return read_items(path)


def encode_items(items: dict[str, list[tuple[str, int]]], item_metric: dict[str, str] | None = None) -> bytes:
    """Deterministic gzip JSON: per task, the doc ids and a string of 0/1 flags (no timestamps)."""
    item_metric = item_metric or {}
    tasks = {}
    for task in sorted(items):
        pairs = items[task]
        tasks[task] = {
            "doc_ids": [doc_id for doc_id, _ in pairs],
            "correct": "".join("1" if flag else "0" for _, flag in pairs),
            "metric": item_metric.get(task),
        }
    payload = json.dumps({"format": ITEMS_FORMAT, "tasks": tasks}, sort_keys=True, separators=(",", ":"))
    return gzip.compress(payload.encode("utf-8"), compresslevel=9, mtime=0)


def decode_items(data: bytes, *, source: str = "<bytes>") -> dict[str, list[tuple[str, int]]]:
    try:
        payload = json.loads(gzip.decompress(data))
    except (OSError, ValueError) as exc:
        raise EvaluationError(
            f"not a readable item store ({exc}); re-run the evaluation", path=source
        ) from exc
    if payload.get("format") != ITEMS_FORMAT:
        raise EvaluationError(f"unknown item store format {payload.get('format')!r}", path=source)
    items = {}
    for task, entry in payload["tasks"].items():
        doc_ids, flags = entry["doc_ids"], entry["correct"]
        if len(doc_ids) != len(flags):
            raise EvaluationError(f"task {task}: {len(doc_ids)} doc ids but {len(flags)} flags", path=source)
        items[task] = [(doc_id, int(flag)) for doc_id, flag in zip(doc_ids, flags, strict=True)]
    return items


def write_items(
    path: str | Path, items: dict[str, list[tuple[str, int]]], item_metric: dict[str, str] | None = None
) -> Path:
    return atomic_write_bytes(path, encode_items(items, item_metric))


def read_items(path: str | Path) -> dict[str, list[tuple[str, int]]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise EvaluationError("item store not found", path=str(path)) from error
    return decode_items(data, source=str(path))
