"""Numerics of the shared-context scorer against lm-eval's stock HF backend, request by request.

Both backends score the very same built requests (one EvaluationSession) of the same model. Per leaf
task: the largest absolute difference of the log-likelihoods, and the items whose prediction
(argmax of `acc`, and of `acc_norm` where the task reports it) differs. A differing item is
expected only where the stock backend's two best choices are within the tolerance (a near tie).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.evaluate.harness import (
    _effective_batch_size,
    build_lm,
    prepare_tasks,
    run_lm_eval,
)
from repro.evaluate.prepared import EvaluationSession
from repro.evaluate.task_loading import quiet_custom_dataset_notice, resolve_specs

# float32: a prefix computed once vs inside the full sequence changes the summation order of the
# attention and matmul reductions; differences seen are ~1e-5 on log-likelihoods of order 10-100.
FLOAT32_TOLERANCE = 1e-4


@dataclass
class TaskComparison:
    task: str
    requests: int = 0
    max_abs_diff: float = 0.0
    differing_items: list[str] = field(default_factory=list)  # doc ids whose prediction differs
    near_tie_items: list[str] = field(default_factory=list)  # of those, the ones that are near ties
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (stock, shared)
    forward_tokens: dict[str, int] = field(default_factory=dict)

    @property
    def only_near_ties_differ(self) -> bool:
        return set(self.differing_items) <= set(self.near_tie_items)


def _predictions(loglikelihoods: list[float], lengths: list[int] | None) -> int:
    values = loglikelihoods if lengths is None else [ll / n for ll, n in zip(loglikelihoods, lengths, strict=True)]
    return max(range(len(values)), key=values.__getitem__)


def _samples_by_task(results: dict) -> dict[str, dict[str, dict]]:
    return {
        task: {str(s["doc_id"]): s for s in samples if s.get("filter", "none") == "none"}
        for task, samples in results["samples"].items()
    }


def compare_backends(
    model,
    tasks,
    *,
    tokenizer=None,
    include_path=None,
    limit=None,
    dtype: str = "float32",
    batch_size: int | str = 16,
    device: str = "cpu",
    tolerance: float = FLOAT32_TOLERANCE,
) -> dict[str, TaskComparison]:
    """Score `tasks` with the stock `hf` backend and with `shared`; compare per task (see module doc)."""
    specs, include_paths = resolve_specs(tasks, include_path)
    session = EvaluationSession()
    batch = _effective_batch_size(batch_size, device)
    results, tokens = {}, {}
    with quiet_custom_dataset_notice():
        prepared = prepare_tasks(specs, include_paths, limit, session)
        for backend in ("hf", "shared"):
            lm = build_lm(model, tokenizer=tokenizer, dtype=dtype, batch_size=batch, device=device, backend=backend)
            if backend == "shared":
                session.share_caches(lm)
            results[backend] = run_lm_eval(lm, prepared, limit)
            tokens[backend] = getattr(lm, "forward_tokens", None)
            del lm
    stock, shared = _samples_by_task(results["hf"]), _samples_by_task(results["shared"])
    report = {}
    for task in sorted(stock):
        entry = report[task] = TaskComparison(task=task)
        for doc_id, ours_sample in shared[task].items():
            theirs_sample = stock[task][doc_id]
            theirs = [float(r[0][0]) for r in theirs_sample["resps"]]
            ours = [float(r[0][0]) for r in ours_sample["resps"]]
            entry.requests += len(ours)
            entry.max_abs_diff = max(entry.max_abs_diff, *(abs(a - b) for a, b in zip(theirs, ours, strict=True)))
            lengths = [max(1, len(args[1])) for args in theirs_sample["arguments"]]
            differs = any(
                _predictions(theirs, norm) != _predictions(ours, norm) for norm in (None, lengths)
            ) or any(ours_sample.get(m) != theirs_sample.get(m) for m in ("acc", "acc_norm"))
            if differs:
                entry.differing_items.append(doc_id)
                gaps = sorted(theirs, reverse=True)
                if len(gaps) > 1 and gaps[0] - gaps[1] <= 2 * tolerance:
                    entry.near_tie_items.append(doc_id)
        for metric in ("acc", "acc_norm"):
            key = f"{metric},none"
            if key in results["hf"]["results"].get(task, {}):
                entry.metrics[metric] = (results["hf"]["results"][task][key], results["shared"]["results"][task][key])
    for entry in report.values():
        entry.forward_tokens = {k: v for k, v in tokens.items() if v is not None}
    return report


def format_comparison(report: dict[str, TaskComparison]) -> str:
    lines = ["| task | requests | max abs Δ loglik | differing items | acc stock | acc shared |", "|---|---:|---:|---|---:|---:|"]
    for entry in report.values():
        stock, ours = entry.metrics.get("acc", (float("nan"), float("nan")))
        differing = ", ".join(entry.differing_items) or "none"
        lines.append(
            f"| {entry.task} | {entry.requests} | {entry.max_abs_diff:.2e} | {differing} | {stock:.4f} | {ours:.4f} |"
        )
    return "\n".join(lines)
