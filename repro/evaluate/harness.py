"""The lm-eval adapter: evaluate a saved or in-memory model on a suite and return an EvalOutcome.

Settings follow the paper (Appendix F): lm-eval's task defaults (n-shot from the task YAML, checked
against the suite), no chat template, lm-eval's default seeds, float16, batch size "auto". The HF
backend runs in-process; a `transformers.PreTrainedModel` is evaluated from memory after being cast
to the evaluation dtype, exactly as loading its saved directory with that dtype would do. lm-eval's
response cache is never used (it is not keyed by model).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.errors import EvaluationError
from repro.evaluate.outcome import EvalOutcome
from repro.evaluate.suites import Suite, TaskSpec
from repro.evaluate.task_errors import task_load_error, unknown_task_error

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_DTYPE = "float16"  # the paper's dtype (App. F); a suite's eval_dtype overrides it
DTYPES = ("float16", "bfloat16", "float32", "auto")
BACKENDS = ("hf", "vllm")
# lm-eval's "auto" batch size probes up to max_batch_size and halves on out-of-memory; on CPU there is
# no OOM signal, so "auto" always ends at max_batch_size. We use that size directly (same result,
# without the probe's extra forward passes) and record it.
CPU_AUTO_BATCH_SIZE = 64


class _DropCustomDatasetNotice(logging.Filter):
    """lm-eval warns on every load of a task with a `custom_dataset` loader (our local tasks); drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


@contextlib.contextmanager
def _quiet_custom_dataset_notice():
    logger, notice_filter = logging.getLogger("lm_eval.api.task"), _DropCustomDatasetNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def lm_eval_version() -> str:
    return importlib.metadata.version("lm_eval")


@functools.lru_cache(maxsize=8)
def _task_manager(include_paths: tuple[str, ...], include_defaults: bool):
    """A TaskManager per search path. Indexing lm-eval's built-in tasks costs 10-15 s, so it is cached."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_paths) or None, include_defaults=include_defaults)


def _resolve_specs(
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


def task_manager_for(names: list[str], include_paths: list[str]):
    """The cheapest TaskManager that knows every name: local folders only if they suffice."""
    if include_paths:
        local = _task_manager(tuple(include_paths), False)
        if all(name in local.all_tasks for name in names):
            return local
    manager = _task_manager(tuple(include_paths), True)
    for name in names:
        if name not in manager.all_tasks:
            raise unknown_task_error(name, manager.all_tasks, include_paths)
    return manager


def load_task_objects(manager, specs: list[TaskSpec]) -> tuple[list[Any], dict[str, str]]:
    """Load each named task/group (datasets included). Returns the objects and leaf -> requested name."""
    from lm_eval.api.group import Group

    objects, parent_of = [], {}
    for spec in specs:
        try:
            loaded = manager.load([spec.name])
        except Exception as exc:  # noqa: BLE001 - translated into one clear message
            entry = manager._index.get(spec.name) if hasattr(manager, "_index") else None
            dataset = None
            if entry is not None and getattr(entry, "yaml_path", None):
                dataset = _dataset_path_of(entry.yaml_path)
            raise task_load_error(spec.name, dataset, exc, gated=spec.gated) from None
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


def _dataset_path_of(yaml_path) -> str | None:
    try:
        import yaml

        text = Path(yaml_path).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("dataset_path:"):
                return line.split(":", 1)[1].strip() or None
        data = yaml.safe_load(text)
        return data.get("dataset_path") if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - only used to improve an error message
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


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise EvaluationError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}", field="dtype")
    return None if dtype == "auto" else getattr(torch, dtype)


def _effective_batch_size(batch_size: int | str, device: str) -> int | str:
    if str(batch_size).startswith("auto") and str(device).startswith("cpu"):
        return CPU_AUTO_BATCH_SIZE
    return batch_size


def build_lm(model, *, tokenizer, dtype: str, batch_size, device: str, backend: str = "hf"):
    """An lm-eval LM for a model directory or an in-memory PreTrainedModel."""
    if backend not in BACKENDS:
        raise EvaluationError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}", field="backend"
        )
    torch_dtype = _torch_dtype(dtype)
    if backend == "vllm":
        if not isinstance(model, (str, Path)):
            raise EvaluationError(
                "the vLLM backend needs a saved model directory, not an in-memory model", field="backend"
            )
        try:
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError:
            raise EvaluationError(
                "the vLLM backend needs `pip install vllm` (GPU machines only)", field="backend"
            ) from None
        return VLLM(
            pretrained=str(model), dtype=dtype, batch_size=batch_size, tokenizer=tokenizer and str(tokenizer)
        )

    from lm_eval.models.huggingface import HFLM

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not (path / "config.json").is_file():
            raise EvaluationError("not a model directory (no config.json)", path=str(path))
        kwargs = {"tokenizer": str(tokenizer)} if isinstance(tokenizer, (str, Path)) else {}
        return HFLM(pretrained=str(path), dtype=dtype, batch_size=batch_size, device=device, **kwargs)

    if tokenizer is None:
        source = getattr(model, "name_or_path", "")
        if source and Path(source, "tokenizer_config.json").is_file():
            tokenizer = source
        else:
            raise EvaluationError("an in-memory model needs its tokenizer (tokenizer=...)", field="tokenizer")
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    # Cast in place: exactly what from_pretrained(dtype=...) does to the saved weights.
    if torch_dtype is not None and model.dtype != torch_dtype:
        model.to(dtype=torch_dtype)
    model.to(device)
    model.eval()
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def run_lm_eval(lm, manager, objects: list, limit) -> dict | None:
    """What `lm_eval.simple_evaluate` does for a ready LM and loaded tasks, minus its environment report.

    simple_evaluate also collects torch's environment info (subprocesses, ~0.5 s per call), which we do
    not store; everything that affects scores is the same: lm-eval's default seeds, n-shot 0 where a task
    sets none, the few-shot sampler seed, no chat template, no response cache, per-sample logging.
    Parity with the stock `lm_eval` CLI is tested (tests/test_evaluate_harness.py).
    """
    import random

    import numpy as np
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED
    from lm_eval.evaluator import evaluate
    from lm_eval.utils import set_torch_seed

    random.seed(DEFAULT_RANDOM_SEED)
    np.random.seed(DEFAULT_OTHER_SEED)
    set_torch_seed(DEFAULT_OTHER_SEED)
    loaded = manager.load(objects)
    for task in loaded["tasks"].values():
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
    return evaluate(
        lm=lm,
        task_dict=loaded,
        limit=limit,
        bootstrap_iters=100000,
        log_samples=True,
        apply_chat_template=False,
        fewshot_as_multiturn=False,
    )


def _release_memory() -> None:
    """Free the evaluated model's memory before the next one (the runner evaluates many in one process)."""
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_model(
    model: Path | str | PreTrainedModel,
    tasks: Suite | list[TaskSpec] | list[str],
    *,
    tokenizer=None,
    include_path=None,
    limit: int | float | None = None,
    dtype: str | None = None,
    batch_size: int | str = "auto",
    device: str = "cpu",
    identity: dict | None = None,
    backend: str = "hf",
) -> EvalOutcome:
    """Evaluate `model` (a saved directory or an in-memory PreTrainedModel, cast in place to `dtype`).

    `dtype` defaults to the suite's eval_dtype, else float16 (the paper's setting).

    Returns scores for every requested task (and the leaves of requested groups), the per-item
    correctness of each leaf task, and the unweighted mean of the requested tasks' primary metric.
    """
    if dtype is None:
        dtype = (tasks.eval_dtype if isinstance(tasks, Suite) else None) or DEFAULT_DTYPE
    specs, include_paths = _resolve_specs(tasks, include_path)
    manager = task_manager_for([spec.name for spec in specs], include_paths)
    effective_batch = _effective_batch_size(batch_size, device)
    with _quiet_custom_dataset_notice():
        objects, parent_of = load_task_objects(manager, specs)
        lm = build_lm(
            model,
            tokenizer=tokenizer,
            dtype=dtype,
            batch_size=effective_batch,
            device=device,
            backend=backend,
        )
        try:
            results = run_lm_eval(lm, manager, objects, limit)
        finally:
            del lm, objects
            _release_memory()
    if results is None:  # not rank 0 in a distributed launch
        raise EvaluationError("lm-eval returned no results on this process (distributed rank > 0)")
    if identity is None:
        identity = (
            {"path": str(Path(model).resolve())}
            if isinstance(model, (str, Path))
            else {
                "in_memory": True,
                "name_or_path": str(getattr(model, "name_or_path", "")),
            }
        )
    from repro.evaluate.results_parsing import outcome_from_results

    return outcome_from_results(
        results,
        specs,
        parent_of,
        identity=identity,
        dtype=dtype,
        batch_size=str(batch_size if effective_batch == batch_size else f"{batch_size}->{effective_batch}"),
        limit=limit,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        version=lm_eval_version(),
    )
