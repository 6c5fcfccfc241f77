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
from repro.results import ResultRecord

ITEMS_FORMAT = "repro-items/1"


class ItemDataError(ReproError):
    """Stored per-item results are missing, unreadable or not paired."""


def read_item_flags(path: str | Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """leaf task -> (doc ids, 0/1 flags as uint8) from one stored items file."""
    path = Path(path)
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError as exc:
        raise ItemDataError("per-item results not found; re-run the job (repro run)", path=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise ItemDataError(f"unreadable per-item results ({exc}); re-run the job", path=str(path)) from exc
    if payload.get("format") != ITEMS_FORMAT:
        raise ItemDataError(f"unknown per-item format {payload.get('format')!r}", path=str(path))
    out = {}
    for leaf, entry in payload["tasks"].items():
        flags = np.frombuffer(entry["correct"].encode("ascii"), dtype=np.uint8) - ord("0")
        if len(flags) != len(entry["doc_ids"]):
            raise ItemDataError(f"task {leaf}: {len(entry['doc_ids'])} doc ids but {len(flags)} flags", path=str(path))
        out[leaf] = ([str(d) for d in entry["doc_ids"]], flags)
    return out


def task_of_leaf(record: ResultRecord) -> dict[str, str]:
    """leaf -> suite task, from a result record's score rows (a row's `parent` is its group)."""
    return record.task_parents()


@dataclass
class ItemMatrix:
    job_ids: list[str]  # column order
    tasks: list[str]
    flags: list[np.ndarray]  # per task: (N_t, M) uint8

    def column(self, job_id: str) -> int:
        return self.job_ids.index(job_id)


def load_item_matrix(store, job_ids: list[str]) -> ItemMatrix:
    """Every job's flags, aligned item by item per suite task: the leaves of a task in name order, each leaf's
    items in stored order, which must be the same doc ids for every job (the first job fixes them)."""
    if not job_ids:
        raise ItemDataError("no finished jobs with per-item results")
    layout: dict[str, list[tuple[str, list[str]]]] | None = None  # task -> [(leaf, doc ids)]
    columns: list[dict[str, np.ndarray]] = []
    for job_id in job_ids:
        record = store.read_result(job_id)
        groups = task_of_leaf(record)
        path = store.root / record.items_file if record.items_file else store.items_path(job_id)
        items = read_item_flags(path)
        tasks: dict[str, list[tuple[str, list[str]]]] = {}
        for leaf in sorted(items):
            tasks.setdefault(groups.get(leaf, leaf), []).append((leaf, items[leaf][0]))
        if layout is None:
            layout = tasks
        elif tasks != layout:
            differing = sorted(set(tasks) ^ set(layout)) or [t for t in layout if tasks.get(t) != layout[t]]
            raise ItemDataError(
                f"job {job_id} was evaluated on other items than job {job_ids[0]} (task(s) {', '.join(differing[:3])});"
                " paired statistics need identical items: re-run with the same evaluation settings",
                path=str(path),
            )
        columns.append({task: np.concatenate([items[leaf][1] for leaf, _ in leaves])
                        for task, leaves in tasks.items()})
    names = sorted(layout)
    flags = [np.stack([col[task] for col in columns], axis=1) for task in names]
    return ItemMatrix(list(job_ids), names, flags)
