"""Finding and loading lm-eval tasks for a suite: task managers, n-shot checks, dataset fetching.

Indexing lm-eval's ~200 built-in task folders costs 10-15 s, so task managers are kept per search path
by the caller's `EvaluationSession`, and the built-ins are indexed only when a suite names a task the
local folders do not have.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import yaml

from repro.errors import EvaluationError
from repro.evaluate.prepared import EvaluationSession
from repro.evaluate.task_errors import task_load_error, unknown_task_error
from repro.facts.suites import Suite, TaskSpec


class _DropCustomDatasetNotice(logging.Filter):
    """lm-eval warns on every load of a task with a `custom_dataset` loader (our local tasks); drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


@contextlib.contextmanager
def quiet_custom_dataset_notice():
    logger, notice_filter = logging.getLogger("lm_eval.api.task"), _DropCustomDatasetNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def resolve_specs(
    tasks: Suite | list[TaskSpec] | list[str], include_path
) -> tuple[list[TaskSpec], list[str]]:
    include_paths: list[str] = []
    if isinstance(tasks, Suite):
        tasks.require_ready()
        specs = list(tasks.tasks)
        if tasks.include_path is not None:
            include_paths.append(str(tasks.include_path))
    else:
        specs = [spec if isinstance(spec, TaskSpec) else TaskSpec(name=str(spec)) for spec in tasks]
    if not specs:
        raise EvaluationError("no tasks to evaluate", field="tasks")
    extra = (
        include_path if isinstance(include_path, (list, tuple)) else [include_path] if include_path else []
    )
    for path in extra:
        if not Path(path).is_dir():
            raise EvaluationError("task folder does not exist", path=str(path), field="include_path")
        include_paths.append(str(Path(path).resolve()))
    return specs, sorted(set(include_paths))


def task_manager_for(names: list[str], include_paths: list[str], session=None):
    """The cheapest TaskManager that knows every name: local folders only if they suffice. Managers are
    kept by the caller's `EvaluationSession` (a new one if none is given), never in module state."""
    if session is None:
        session = EvaluationSession()
    if include_paths:
        local = session.task_manager(tuple(include_paths), False)
        if all(name in local.all_tasks for name in names):
            return local
    manager = session.task_manager(tuple(include_paths), True)
    for name in names:
        if name not in manager.all_tasks:
            raise unknown_task_error(name, manager.all_tasks, include_paths)
    return manager


def load_task_objects(manager, specs: list[TaskSpec]) -> tuple[list[Any], dict[str, str]]:
    """Load each named task/group (datasets included). Returns the objects and leaf -> requested name."""
    # lm_eval: deferred so that importing this module does not load it
    from lm_eval.api.group import Group

    objects, parent_of = [], {}
    for spec in specs:
        try:
            loaded = manager.load([spec.name])
        except task_load_errors() as exc:  # lm-eval / datasets / hub failures; a bug propagates as itself
            entry = manager._index.get(spec.name) if hasattr(manager, "_index") else None
            dataset = None
            if entry is not None and getattr(entry, "yaml_path", None):
                dataset = _dataset_path_of(entry.yaml_path)
            raise task_load_error(spec.name, dataset, exc, gated=spec.gated) from exc
        top = loaded.get("groups", {}).get(spec.name)
        objects.extend([top] if isinstance(top, Group) else loaded["tasks"].values())
        for leaf in loaded["tasks"]:
            if leaf in parent_of:
                raise EvaluationError(
                    f"task {leaf!r} is part of both {parent_of[leaf]!r} and {spec.name!r}", field="tasks"
                )
            parent_of[leaf] = spec.name
        _apply_fewshot(spec, loaded["tasks"])
    return objects, parent_of


def task_load_errors() -> tuple[type[BaseException], ...]:
    """The error types lm-eval, datasets and the hub raise for a task that cannot be loaded (a missing or
    unreachable dataset, a gated one, a bad task YAML): OSError covers the hub's HTTP, offline and
    not-found errors; datasets' own errors; ValueError / KeyError for bad task configs."""
    # datasets: deferred so that importing this module does not load it
    from datasets.exceptions import DatasetsError

    return (OSError, ValueError, KeyError, yaml.YAMLError, DatasetsError)


def _dataset_path_of(yaml_path) -> str | None:
    try:
        text = Path(yaml_path).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("dataset_path:"):
                return line.split(":", 1)[1].strip() or None
        data = yaml.safe_load(text)
        return data.get("dataset_path") if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # only used to improve an error message
        return None


def _apply_fewshot(spec: TaskSpec, leaves: dict[str, Any]) -> None:
    """Use the suite's n-shot; a task YAML that pins 0 cannot be overridden (lm-eval rule)."""
    for name, task in leaves.items():
        current = task.get_config("num_fewshot")
        if current == spec.num_fewshot or (current is None and spec.num_fewshot == 0):
            continue
        if current == 0:
            raise EvaluationError(
                f"task {name!r} pins num_fewshot: 0 in its YAML, but the suite asks for {spec.num_fewshot}; "
                "fix num_fewshot in the suite",
                field=f"tasks.{spec.name}.num_fewshot",
            )
        task.set_config(key="num_fewshot", value=spec.num_fewshot)


def fetch_suite_datasets(tasks: Suite | list[TaskSpec] | list[str], include_path=None, session=None) -> dict[str, int]:
    """Load every task of a suite (downloading hub datasets into the local cache): leaf task -> items.

    Run once on a machine with network access (and HF_TOKEN for gated datasets) so that later
    evaluations work offline from the Hugging Face datasets cache.
    """
    specs, include_paths = resolve_specs(tasks, include_path)
    manager = task_manager_for([spec.name for spec in specs], include_paths, session)
    counts: dict[str, int] = {}
    with quiet_custom_dataset_notice():
        for spec in specs:
            objects, parent_of = load_task_objects(manager, [spec])
            loaded = manager.load(objects)
            for leaf, task in sorted(loaded["tasks"].items()):
                counts[leaf] = len(task.eval_docs)
    return counts
