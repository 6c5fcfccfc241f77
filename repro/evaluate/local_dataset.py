"""Dataset loader for local lm-eval tasks: reads a JSONL file that sits next to the task YAML.

lm-eval passes `dataset_kwargs` (and task metadata) as keyword arguments to a task's `custom_dataset`
function. Paths are resolved relative to this file, so the tasks work from any working directory
without writing absolute paths into committed YAML, and nothing goes through the Hugging Face cache.
This file is copied verbatim next to every generated task folder (repro/evaluate/local_dataset.py is
the original; tasks/smoke/jsonl_dataset.py is a committed copy, checked identical by the tests).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_jsonl(data_file: str, split: str = "test", **_metadata):
    """A DatasetDict with one split holding the rows of `data_file` (relative to this folder)."""
    import datasets

    path = (HERE / data_file).resolve()
    # split on "\n" only: str.splitlines() would also split at U+2028 etc. inside JSON strings
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)})
