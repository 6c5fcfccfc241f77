"""Tasks and requests built once per process, reused for every model evaluated after.

Every merged model of one base shares the tokenizer, so it sees exactly the same lm-eval requests.
An `EvaluationSession` keeps, per task selection (names, n-shot, include folders, limit), the loaded
lm-eval tasks with their built request instances (documents, few-shot contexts, prompts), and per
tokenizer the token ids of every (context, continuation) pair. The reuse is guarded by fingerprints:
the task key holds the lm-eval version and a content hash of every local task folder (YAML and
data), and token ids are keyed by a hash of the tokenizer (vocabulary, merges, special tokens,
BOS handling). Only requests are shared: every model's responses are computed by that model, and
lm-eval's response cache (not keyed by model) is never used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over (relative path, size, content sha256) of every file under `folder`."""
    folder = Path(folder)
    outer = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        outer.update(f"{path.relative_to(folder).as_posix()}\0{digest}\n".encode())
    return outer.hexdigest()


def tokenizer_fingerprint(lm) -> str:
    """sha256 of everything lm-eval's tokenization of a request depends on for this LM."""
    tokenizer = lm.tokenizer
    parts = [
        type(tokenizer).__name__,
        repr(getattr(lm, "add_bos_token", None)),
        repr(getattr(lm, "prefix_token_id", None)),
        repr(getattr(lm, "backend", None)),
        json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str),
    ]
    for attribute in ("add_bos_token", "add_eos_token", "clean_up_tokenization_spaces", "padding_side"):
        parts.append(repr(getattr(tokenizer, attribute, None)))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        parts.append(backend.to_str())
    else:
        parts.append(json.dumps(sorted(tokenizer.get_vocab().items())))
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def task_selection_key(specs, include_paths: list[str], limit, lm_eval_version: str) -> str:
    """Identity of a task selection: names, n-shot, limit, lm-eval version, local folder contents."""
    payload = {
        "tasks": [[spec.name, spec.num_fewshot] for spec in specs],
        "include_paths": {path: folder_fingerprint(path) for path in include_paths},
        "limit": limit,
        "lm_eval": lm_eval_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class PreparedTasks:
    """Loaded lm-eval tasks (datasets, few-shot samplers) and, after the first run, their requests."""

    loaded: dict[str, Any]
    parent_of: dict[str, str]
    built: bool = False
    versions: dict[str, Any] = field(default_factory=dict)

    def mark_built(self) -> None:
        """After the first evaluation: later ones reuse the built request instances (responses cleared)."""
        self.built = True

    @contextlib.contextmanager
    def reusing_requests(self) -> Iterator[None]:
        """While the block runs, each task's `build_all_requests` only clears the last model's responses
        (its requests exist); afterwards the tasks are lm-eval's own objects again, unchanged."""
        tasks = list(self.loaded["tasks"].values())
        missing = object()
        saved = [task.__dict__.get("build_all_requests", missing) for task in tasks]
        for task in tasks:
            task.build_all_requests = functools.partial(_reuse_requests, task)
        try:
            yield
        finally:
            for task, old in zip(tasks, saved, strict=True):
                if old is missing:
                    del task.build_all_requests
                else:
                    task.build_all_requests = old


def _reuse_requests(task, **_build_arguments) -> None:
    """Stands in for Task.build_all_requests once the requests exist: clear the last model's responses."""
    for instance in task.instances:
        instance.resps = []
        instance.filtered_resps = {}


class EvaluationSession:
    """Per-process store of built tasks and tokenized requests (see the module docstring)."""

    def __init__(self) -> None:
        self._tasks: dict[str, PreparedTasks] = {}
        self._tokens: dict[str, dict] = {}
        self._packings: dict[str, dict] = {}  # tokenizer fingerprint -> scorer plans
        self._managers: dict[tuple, Any] = {}  # (include paths, include defaults) -> lm-eval TaskManager
        self.reused_tasks = 0  # how many evaluations reused built requests (for tests and logs)

    def tasks(self, key: str, load) -> PreparedTasks:
        """The prepared tasks of `key`, loading them with `load()` -> (loaded, parent_of) the first time."""
        prepared = self._tasks.get(key)
        if prepared is None:
            loaded, parent_of = load()
            prepared = self._tasks[key] = PreparedTasks(loaded=loaded, parent_of=parent_of)
        elif prepared.built:
            self.reused_tasks += 1
        return prepared

    def task_manager(self, include_paths: tuple[str, ...], include_defaults: bool):
        """lm-eval's TaskManager for a search path, made once per session (indexing lm-eval's built-in
        tasks costs 10-15 s)."""
        key = (tuple(include_paths), include_defaults)
        if key not in self._managers:
            # lm_eval: deferred so that importing this module does not load it
            from lm_eval.tasks import TaskManager

            self._managers[key] = TaskManager(include_path=list(include_paths) or None,
                                              include_defaults=include_defaults)
        return self._managers[key]

    def share_caches(self, lm) -> None:
        """Give a shared-context LM this session's caches for its tokenizer: (context, continuation) ->
        token ids, and the scorer's plans for each request set (which requests are packed as prefix trees,
        and their packed rows). Built for the first model of a tokenizer, reused by the next."""
        fingerprint = tokenizer_fingerprint(lm)
        lm.token_cache = self._tokens.setdefault(fingerprint, {})
        lm.packing_cache = self._packings.setdefault(fingerprint, {})
