"""The lm-eval adapter: evaluate a saved or in-memory model on a suite and return an EvalOutcome.

Settings follow the paper (Appendix F): lm-eval's task defaults (n-shot from the task YAML, checked
against the suite), no chat template, lm-eval's default seeds, float16, batch size "auto". The HF
backend runs in-process; a `transformers.PreTrainedModel` is evaluated from memory after being cast
to the evaluation dtype, exactly as loading its saved directory with that dtype would do. lm-eval's
response cache is never used (it is not keyed by model).

Backends: `shared` (default) is lm-eval's HF backend with shared-context scoring
(repro/evaluate/shared_context.py: each multiple-choice context computed once, scores equal to
`hf` within floating-point noise); `hf` is the stock HF backend; `vllm` needs a saved model and a GPU.
Tasks and their requests are built once per process and reused for every model after
(repro/evaluate/prepared.py).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.metadata
import inspect
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from repro.errors import EvaluationError
from repro.evaluate.expected_warnings import in_memory_model_warnings_silenced
from repro.evaluate.outcome import EvalOutcome
from repro.evaluate.prepared import (
    EvaluationSession,
    PreparedTasks,
    task_selection_key,
)
from repro.evaluate.results_parsing import outcome_from_results
from repro.evaluate.run_facts import lm_eval_seeds, run_facts
from repro.evaluate.task_loading import (
    load_task_objects,
    quiet_custom_dataset_notice,
    resolve_specs,
    task_manager_for,
)
from repro.facts.choices import BACKENDS, DEFAULT_BACKEND, DEFAULT_EVAL_DTYPE, HARNESS_DTYPES
from repro.facts.suites import Suite, TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# lm-eval's "auto" batch size probes up to max_batch_size and halves on out-of-memory; on CPU there is
# no OOM signal, so "auto" always ends at max_batch_size. We use that size directly (same result,
# without the probe's extra forward passes) and record it.
CPU_AUTO_BATCH_SIZE = 64


def lm_eval_version() -> str:
    return importlib.metadata.version("lm_eval")


def _torch_dtype(dtype: str):
    # torch: deferred so that importing this module does not load it
    import torch

    if dtype not in HARNESS_DTYPES:
        raise EvaluationError(f"unknown dtype {dtype!r}; choose one of {', '.join(HARNESS_DTYPES)}", field="dtype")
    return None if dtype == "auto" else getattr(torch, dtype)


def _effective_batch_size(batch_size: int | str, device: str) -> int | str:
    if str(batch_size).startswith("auto") and str(device).startswith("cpu"):
        return CPU_AUTO_BATCH_SIZE
    return batch_size


def build_lm(model, *, tokenizer, dtype: str, batch_size, device: str, backend: str = DEFAULT_BACKEND):
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
            # optional: used only when installed
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError as error:
            raise EvaluationError(
                "the vLLM backend needs `pip install vllm` (GPU machines only)", field="backend"
            ) from error
        return VLLM(
            pretrained=str(model), dtype=dtype, batch_size=batch_size, tokenizer=tokenizer and str(tokenizer)
        )

    if backend == "shared":
        # torch, lm_eval: deferred so that importing this module does not load them
        from repro.evaluate.shared_context import SharedContextHFLM as HFLM
    else:
        # lm_eval: deferred so that importing this module does not load it
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
        # transformers: deferred so that importing this module does not load it
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    # Cast in place: exactly what from_pretrained(dtype=...) does to the saved weights.
    if torch_dtype is not None and model.dtype != torch_dtype:
        model.to(dtype=torch_dtype)
    model.to(device)
    model.eval()
    with in_memory_model_warnings_silenced():
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def _set_default_seeds() -> dict[str, int]:
    """Set lm-eval's default seeds; returns them (what the job record stores)."""
    # lm_eval, numpy: deferred so that importing this module does not load them
    import numpy as np
    from lm_eval.utils import set_torch_seed

    seeds = lm_eval_seeds()
    random.seed(seeds["random_seed"])
    np.random.seed(seeds["numpy_seed"])
    set_torch_seed(seeds["torch_seed"])
    return seeds


def load_tasks(manager, objects: list) -> dict:
    """What `lm_eval.simple_evaluate` does to tasks before evaluating: lm-eval's default seeds, n-shot 0
    where a task sets none, the few-shot sampler seed."""
    seeds = _set_default_seeds()
    loaded = manager.load(objects)
    for task in loaded["tasks"].values():
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=seeds["fewshot_seed"])
    return loaded


def prepare_tasks(specs: list[TaskSpec], include_paths: list[str], limit, session: EvaluationSession):
    """The session's loaded tasks for this selection (loaded now if this is the first time)."""

    def load() -> tuple[dict, dict[str, str]]:
        manager = task_manager_for([spec.name for spec in specs], include_paths, session)
        objects, parent_of = load_task_objects(manager, specs)
        return load_tasks(manager, objects), parent_of

    return session.tasks(task_selection_key(specs, include_paths, limit, lm_eval_version()), load)


def run_lm_eval(lm, prepared: PreparedTasks, limit, item_sample: dict | None = None) -> dict | None:
    """What `lm_eval.simple_evaluate` does for a ready LM and loaded tasks, minus its environment report.

    simple_evaluate also collects torch's environment info (subprocesses, ~0.5 s per call), which we do
    not store; everything that affects scores is the same: lm-eval's default seeds, no chat template,
    no response cache, per-sample logging. Tasks whose requests were built for an earlier model reuse
    them (same documents, prompts and few-shot samples; responses cleared).
    Parity with the stock `lm_eval` CLI is tested (tests/test_evaluate_lm_eval_parity.py).
    """
    # lm_eval: deferred so that importing this module does not load it
    from lm_eval.evaluator import evaluate

    if prepared.built:
        _set_default_seeds()
    samples = None
    if item_sample is not None:  # the same seeded items of each task for every model
        # numpy: deferred so that importing this module does not load it
        from repro.evaluate.item_sample import samples_for

        samples = samples_for(prepared.loaded["tasks"], int(item_sample["per_task"]), int(item_sample.get("seed", 0)))
    with prepared.reusing_requests() if prepared.built else contextlib.nullcontext():
        results = evaluate(
            lm=lm,
            task_dict=prepared.loaded,
            limit=limit,
            samples=samples,
            bootstrap_iters=100000,
            log_samples=True,
            apply_chat_template=False,
            fewshot_as_multiturn=False,
        )
    if not prepared.built:
        prepared.mark_built()
    return results


def sample_loglikelihoods(samples: dict) -> dict[str, dict[str, list[float]]]:
    """{task: {doc id: [log-likelihood per request]}} from lm-eval's logged samples (loglikelihood
    tasks only; the stock CLI's `--log_samples` files hold the same `resps`)."""
    table: dict[str, dict[str, list[float]]] = {}
    for task, task_samples in samples.items():
        for sample in task_samples:
            if sample.get("filter", "none") != "none":
                continue
            resps = sample.get("resps") or []
            if resps and all(isinstance(r, (list, tuple)) and r and isinstance(r[0], (list, tuple)) for r in resps):
                table.setdefault(task, {})[str(sample["doc_id"])] = [float(r[0][0]) for r in resps]
    return table


def _silence_request_bars(lm) -> None:
    """lm-eval's request methods take `disable_tqdm`; bind it to True on this LM instance."""
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        method = getattr(lm, name, None)
        if method is not None and "disable_tqdm" in inspect.signature(method).parameters:
            setattr(lm, name, functools.partial(method, disable_tqdm=True))


def _announce_requests(lm, n_tasks: int, status) -> None:
    """Before each of lm-eval's scoring passes, tell `status` its size ("7 tasks: 2,450 loglikelihood
    requests"): lm-eval scores all tasks' requests of one kind in one call."""
    def announced(method, kind, requests, *args, **kwargs):
        status(f"{n_tasks} tasks: {len(requests):,} {kind} requests")
        return method(requests, *args, **kwargs)

    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        method = getattr(lm, name, None)
        if method is not None:
            setattr(lm, name, functools.partial(announced, method, name.replace("_", " ")))


def _release_memory() -> None:
    """Free the evaluated model's memory before the next one (the runner evaluates many in one process)."""
    gc.collect()
    # torch: deferred so that importing this module does not load it
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
    item_sample: dict | None = None,
    dtype: str | None = None,
    batch_size: int | str = "auto",
    device: str = "cpu",
    identity: dict | None = None,
    backend: str = DEFAULT_BACKEND,
    show_progress: bool = True,
    session: EvaluationSession | None = None,
    loglikelihoods_out: dict | None = None,
    status=None,
) -> EvalOutcome:
    """Evaluate `model` (a saved directory or an in-memory PreTrainedModel, cast in place to `dtype`).

    `dtype` defaults to the suite's eval_dtype, else float16 (the paper's setting).
    `backend`: "shared" (shared-context scoring, default), "hf" (lm-eval's stock HF path) or "vllm".
    `show_progress=False` silences lm-eval's per-request progress bars (the runner shows its own);
    `status(text)`, when given, is told how many tasks and requests each scoring pass holds.
    `session` holds the task managers, tasks and tokenized requests reused between models: pass one to
    several calls to share them (the runner and `repro evaluate` do); without one a call builds its own.
    `loglikelihoods_out` (a dict), when given, receives {leaf task: {doc id: [log-likelihood of each
    choice]}} for the loglikelihood tasks (for numerics comparisons against another backend).
    `item_sample={"per_task": k, "seed": s}` scores a fixed seeded sample of k items per task, the same
    for every model (repro.evaluate.item_sample); it excludes `limit`.

    Returns scores for every requested task (and the leaves of requested groups), the per-item
    correctness of each leaf task, and the unweighted mean of the requested tasks' primary metric.
    """
    if dtype is None:
        dtype = (tasks.eval_dtype if isinstance(tasks, Suite) else None) or DEFAULT_EVAL_DTYPE
    specs, include_paths = resolve_specs(tasks, include_path)
    session = session if session is not None else EvaluationSession()
    effective_batch = _effective_batch_size(batch_size, device)
    with quiet_custom_dataset_notice():
        # the item sample is part of what the prepared requests were built for
        prepared = prepare_tasks(specs, include_paths, limit if item_sample is None else (limit, tuple(
            sorted(item_sample.items()))), session)
        parent_of = prepared.parent_of
        lm = build_lm(
            model,
            tokenizer=tokenizer,
            dtype=dtype,
            batch_size=effective_batch,
            device=device,
            backend=backend,
        )
        if backend == "shared":
            session.share_caches(lm)
        if not show_progress:
            _silence_request_bars(lm)
        if status is not None:
            _announce_requests(lm, len(specs), status)
        try:
            results = run_lm_eval(lm, prepared, limit, item_sample)
            forward_tokens = getattr(lm, "forward_tokens", None)
            facts = run_facts(lm, lm_eval_seeds())
        finally:
            del lm
            _release_memory()
    if results is None:  # not rank 0 in a distributed launch
        raise EvaluationError("lm-eval returned no results on this process (distributed rank > 0)")
    if loglikelihoods_out is not None:
        loglikelihoods_out.update(sample_loglikelihoods(results.get("samples") or {}))
    if identity is None:
        identity = (
            {"path": str(Path(model).resolve())}
            if isinstance(model, (str, Path))
            else {
                "in_memory": True,
                "name_or_path": str(getattr(model, "name_or_path", "")),
            }
        )
    outcome = outcome_from_results(
        results,
        specs,
        parent_of,
        identity=identity,
        dtype=dtype,
        batch_size=str(batch_size if effective_batch == batch_size else f"{batch_size}->{effective_batch}"),
        limit=limit,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        version=lm_eval_version(),
        backend=backend,
    )
    outcome.forward_tokens = forward_tokens
    outcome.run = facts
    return outcome
