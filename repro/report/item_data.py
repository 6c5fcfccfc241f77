"""Per-item correctness of an experiment's stored results, aligned for paired statistics (numpy, no torch).

The runner stores, per finished job, items/<job_id>.json.gz: per leaf task the doc ids and a 0/1 string
(format "repro-items/1", written by the evaluation layer). Here they are read back -- this module reads the
stored format itself, so that the report layer never imports the evaluation code -- and grouped into the
suite's tasks: a leaf whose score row names a `parent` group belongs to that group (its items are pooled,
as lm-eval's size-weighted group accuracy does), every other leaf is its own task.

`ItemMatrix` holds, per task, an (items x models) 0/1 matrix over the same items in the same order for
every model; a model whose items differ from the others' is an error naming its job and task (a paired
comparison needs identical items).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.errors import ReproError

ITEMS_FORMAT = "repro-items/1"


class ItemDataError(ReproError):
    """Stored per-item results are missing, unreadable or not paired."""


def read_item_flags(path: str | Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """leaf task -> (doc ids, 0/1 flags as uint8) from one stored items file."""
    path = Path(path)
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise ItemDataError("per-item results not found; re-run the job (repro run)", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise ItemDataError(f"unreadable per-item results ({exc}); re-run the job", path=str(path)) from None
    if payload.get("format") != ITEMS_FORMAT:
        raise ItemDataError(f"unknown per-item format {payload.get('format')!r}", path=str(path))
    out = {}
    for leaf, entry in payload["tasks"].items():
        flags = np.frombuffer(entry["correct"].encode("ascii"), dtype=np.uint8) - ord("0")
        if len(flags) != len(entry["doc_ids"]):
            raise ItemDataError(f"task {leaf}: {len(entry['doc_ids'])} doc ids but {len(flags)} flags", path=str(path))
        out[leaf] = ([str(d) for d in entry["doc_ids"]], flags)
    return out


def task_of_leaf(record: dict) -> dict[str, str]:
    """leaf -> suite task, from a result record's score rows (a row's `parent` is its group)."""
    return {row["task"]: row["parent"] for row in record.get("scores", []) if row.get("parent")}


@dataclass
class ItemMatrix:
    job_ids: list[str]  # column order
    tasks: list[str]
    flags: list[np.ndarray]  # per task: (N_t, M) uint8

    def column(self, job_id: str) -> int:
        return self.job_ids.index(job_id)


def load_item_matrix(store, job_ids: list[str]) -> ItemMatrix:
    """Every job's flags, aligned item by item per suite task (the first job fixes the item order)."""
    if not job_ids:
        raise ItemDataError("no finished jobs with per-item results")
    keys: dict[str, list[tuple[str, str]]] | None = None
    columns: list[dict[str, np.ndarray]] = []
    for job_id in job_ids:
        record = store.read_result(job_id)
        groups = task_of_leaf(record)
        items = read_item_flags(store.root / record["items_file"]) if record.get("items_file") else \
            read_item_flags(store.items_path(job_id))
        per_task: dict[str, list[tuple[tuple[str, str], int]]] = {}
        for leaf, (doc_ids, flags) in items.items():
            task = groups.get(leaf, leaf)
            per_task.setdefault(task, []).extend(((leaf, d), int(f)) for d, f in zip(doc_ids, flags, strict=True))
        for task in per_task:
            per_task[task].sort(key=lambda pair: pair[0])
        task_keys = {task: [k for k, _ in pairs] for task, pairs in per_task.items()}
        if keys is None:
            keys = task_keys
        elif task_keys != keys:
            differing = sorted(set(task_keys) ^ set(keys)) or [t for t in keys if task_keys.get(t) != keys[t]]
            raise ItemDataError(
                f"job {job_id} was evaluated on other items than job {job_ids[0]} (task(s) {', '.join(differing[:3])});"
                " paired statistics need identical items: re-run with the same evaluation settings",
                path=str(store.items_path(job_id)),
            )
        columns.append({task: np.fromiter((f for _, f in pairs), dtype=np.uint8, count=len(pairs))
                        for task, pairs in per_task.items()})
    tasks = sorted(keys)
    flags = [np.stack([col[task] for col in columns], axis=1) for task in tasks]
    return ItemMatrix(list(job_ids), tasks, flags)
