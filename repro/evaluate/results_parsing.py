"""Read lm-eval's results dict into ScoreRows and the per-item store (no torch, no model)."""

from __future__ import annotations

import hashlib
from typing import Any

from repro.errors import EvaluationError
from repro.evaluate.outcome import EvalOutcome, ScoreRow
from repro.facts.suites import TaskSpec


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample_task_hash(samples: list[dict]) -> str:
    """lm-eval's task hash: sha256 over each sample's doc, prompt and target hashes (as its tracker does)."""
    return _sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))


def _metrics(entry: dict) -> dict[str, tuple[float, float | None]]:
    """{'acc': (value, stderr)} from lm-eval's 'acc,none' / 'acc_stderr,none' keys."""
    out = {}
    for key, value in entry.items():
        if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
            continue
        metric, filter_name = key.split(",", 1)
        stderr = entry.get(f"{metric}_stderr,{filter_name}")
        name = metric if filter_name == "none" else f"{metric},{filter_name}"
        out[name] = (float(value), float(stderr) if isinstance(stderr, (int, float)) else None)
    return out


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def outcome_from_results(
    results: dict,
    specs: list[TaskSpec],
    parent_of: dict[str, str],
    *,
    identity: dict,
    dtype: str,
    batch_size: str | None,
    limit,
    date: str,
    version: str,
    backend: str | None = None,
) -> EvalOutcome:
    by_name = {spec.name: spec for spec in specs}
    scores, samples = results["results"], results.get("samples") or {}
    n_shot, versions, n_samples = (
        results.get("n-shot", {}),
        results.get("versions", {}),
        results.get("n-samples", {}),
    )

    task_hashes = {leaf: sample_task_hash(samples[leaf]) for leaf in sorted(samples)}
    for name in by_name:
        leaves = sorted(leaf for leaf, parent in parent_of.items() if parent == name)
        if leaves != [name]:
            task_hashes[name] = _sha256("".join(task_hashes.get(leaf, "") for leaf in leaves))

    rows: list[ScoreRow] = []
    names = list(by_name) + sorted(leaf for leaf in parent_of if leaf not in by_name)
    for name in names:
        if name not in scores:
            raise EvaluationError(f"lm-eval reported no score for task {name!r}", field="tasks")
        spec = by_name.get(name) or by_name[parent_of[name]]
        metrics = _metrics(scores[name])
        if name in by_name and spec.metric not in metrics:
            raise EvaluationError(
                f"task {name!r} reports {', '.join(sorted(metrics)) or 'no metrics'}, not {spec.metric!r}; "
                "set its metric in the suites file",
                field=f"tasks.{name}.metric",
            )
        leaves = [leaf for leaf, parent in parent_of.items() if parent == name]
        shots = {n_shot.get(leaf) for leaf in leaves} if name in by_name else {n_shot.get(name)}
        shots_value = next(iter(shots)) if len(shots) == 1 else None
        items_count = sum(
            n_samples.get(leaf, {}).get("effective", 0) for leaf in (leaves if name in by_name else [name])
        )
        for metric, (value, stderr) in sorted(metrics.items()):
            rows.append(
                ScoreRow(
                    model=identity,
                    task=name,
                    metric=metric,
                    value=value,
                    stderr=stderr,
                    primary=name in by_name and metric == spec.metric,
                    parent=None if name in by_name else parent_of[name],
                    n_shot=shots_value,
                    n_items=items_count or None,
                    limit=limit,
                    lm_eval_version=version,
                    task_version=_as_str(versions.get(name)),
                    task_hash=task_hashes.get(name),
                    dtype=dtype,
                    batch_size=batch_size,
                    backend=backend,
                    date=date,
                )
            )

    items, item_metric = {}, {}
    for leaf in sorted(samples):
        metric = by_name[parent_of.get(leaf, leaf)].metric if parent_of.get(leaf, leaf) in by_name else "acc"
        pairs = sorted(
            ((int(s["doc_id"]), s) for s in samples[leaf] if s.get("filter", "none") == "none"),
            key=lambda p: p[0],
        )
        if pairs and metric not in pairs[0][1]:
            continue
        items[leaf] = [(str(doc_id), 1 if float(s[metric]) > 0.5 else 0) for doc_id, s in pairs]
        item_metric[leaf] = metric

    primary = [row.value for row in rows if row.primary]
    return EvalOutcome(
        rows=rows,
        items=items,
        item_metric=item_metric,
        average=sum(primary) / len(primary) if primary else None,
        lm_eval_version=version,
        task_hashes=task_hashes,
    )
