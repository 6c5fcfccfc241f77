"""Does the shared-context scorer agree with lm-eval's stock `hf` backend as well as stock agrees with itself?

In half precision the log-likelihoods of the stock backend itself move with the batch composition (padding
and the order of reductions change; lm-eval issue #1625: batch size changes scores), so bitwise equality is
the wrong yardstick for the shared scorer. The check runs the same items three times, on one model:

    stock A   lm-eval's `hf` backend at batch size A
    stock B   lm-eval's `hf` backend at batch size B
    shared    the kit's `shared` backend at batch size A

and counts, per task, the items whose prediction (argmax over the choices of the log-likelihood, and of the
length-normalized one where the task reports acc_norm) differs between stock A and stock B (stock's own
noise) and between stock A and shared.

RULE (enforced: `AgreementReport.passed`, exit status 1 of `repro evaluate --compare-backends`): per task
and over all tasks together, disagreements(stock A, shared) <= disagreements(stock A, stock B) + margin,
with margin = max(1, ceil(MARGIN_FRACTION * items)) items (MARGIN_FRACTION = 1%). The one-item floor keeps
a single near tie on a small sample from failing the check; a scorer that is wrong disagrees on many items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from repro.evaluate.harness import build_lm, prepare_tasks, run_lm_eval
from repro.evaluate.prepared import EvaluationSession
from repro.evaluate.scorer_check import _samples_by_task
from repro.evaluate.task_loading import quiet_custom_dataset_notice, resolve_specs

MARGIN_FRACTION = 0.01
RULE = (
    "shared may disagree with stock (batch A) on at most as many items as stock at batch A disagrees with "
    "stock at batch B, plus max(1, ceil(1% of the items)); per task and over all tasks"
)


def margin_items(items: int, fraction: float = MARGIN_FRACTION) -> int:
    return max(1, math.ceil(fraction * items))


@dataclass
class TaskAgreement:
    task: str
    items: int = 0
    stock_vs_stock: list[str] = field(default_factory=list)  # doc ids: stock A and stock B predict differently
    stock_vs_shared: list[str] = field(default_factory=list)  # doc ids: stock A and shared predict differently
    max_abs_diff_stock: float = 0.0  # largest |log-likelihood| difference, stock A vs stock B
    max_abs_diff_shared: float = 0.0  # stock A vs shared
    accuracy: dict[str, float] = field(default_factory=dict)  # run -> acc

    @property
    def margin(self) -> int:
        return margin_items(self.items)

    @property
    def passed(self) -> bool:
        return len(self.stock_vs_shared) <= len(self.stock_vs_stock) + self.margin


@dataclass
class AgreementReport:
    tasks: dict[str, TaskAgreement]
    batch_sizes: tuple[int, int]
    dtype: str
    device: str
    items_per_task: int | None

    @property
    def items(self) -> int:
        return sum(t.items for t in self.tasks.values())

    @property
    def stock_disagreements(self) -> int:
        return sum(len(t.stock_vs_stock) for t in self.tasks.values())

    @property
    def shared_disagreements(self) -> int:
        return sum(len(t.stock_vs_shared) for t in self.tasks.values())

    @property
    def total_passed(self) -> bool:
        return self.shared_disagreements <= self.stock_disagreements + margin_items(self.items)

    @property
    def passed(self) -> bool:
        return self.total_passed and all(t.passed for t in self.tasks.values())

    def failures(self) -> list[str]:
        out = [f"{t.task}: shared disagrees with stock on {len(t.stock_vs_shared)} of {t.items} items, stock with "
               f"itself on {len(t.stock_vs_stock)} (+ margin {t.margin})" for t in self.tasks.values() if not t.passed]
        if not self.total_passed:
            out.append(f"all tasks: shared {self.shared_disagreements}, stock {self.stock_disagreements} "
                       f"(+ margin {margin_items(self.items)}) of {self.items} items")
        return out

    def as_dict(self) -> dict:
        return {
            "rule": RULE, "passed": self.passed, "batch_sizes": list(self.batch_sizes), "dtype": self.dtype,
            "device": self.device, "items_per_task": self.items_per_task, "items": self.items,
            "stock_vs_stock": self.stock_disagreements, "stock_vs_shared": self.shared_disagreements,
            "tasks": {name: {"items": t.items, "stock_vs_stock": t.stock_vs_stock, "stock_vs_shared": t.stock_vs_shared,
                             "margin": t.margin, "passed": t.passed, "max_abs_diff_stock": t.max_abs_diff_stock,
                             "max_abs_diff_shared": t.max_abs_diff_shared, "accuracy": t.accuracy}
                      for name, t in self.tasks.items()},
        }


def predictions(sample: dict) -> tuple[int, ...]:
    """An lm-eval multiple-choice sample's predictions: argmax of the log-likelihoods, and of the
    log-likelihoods per character of the continuation (lm-eval's acc_norm)."""
    values = [float(r[0][0]) for r in sample["resps"]]
    lengths = [max(1, len(args[1])) for args in sample["arguments"]]
    normalized = [v / n for v, n in zip(values, lengths, strict=True)]
    return (max(range(len(values)), key=values.__getitem__), max(range(len(values)), key=normalized.__getitem__))


def compare_samples(runs: dict[str, dict[str, dict[str, dict]]], results: dict[str, dict]) -> dict[str, TaskAgreement]:
    """runs: "stock_a" / "stock_b" / "shared" -> task -> doc id -> sample; results: run -> lm-eval results."""
    report = {}
    for task in sorted(runs["stock_a"]):
        entry = report[task] = TaskAgreement(task)
        for doc_id, reference in runs["stock_a"][task].items():
            entry.items += 1
            base = [float(r[0][0]) for r in reference["resps"]]
            for other, ids, attribute in (("stock_b", entry.stock_vs_stock, "max_abs_diff_stock"),
                                          ("shared", entry.stock_vs_shared, "max_abs_diff_shared")):
                sample = runs[other][task][doc_id]
                values = [float(r[0][0]) for r in sample["resps"]]
                diff = max(abs(a - b) for a, b in zip(base, values, strict=True))
                setattr(entry, attribute, max(getattr(entry, attribute), diff))
                if predictions(sample) != predictions(reference):
                    ids.append(doc_id)
        for run, result in results.items():
            value = result.get("results", {}).get(task, {}).get("acc,none")
            if value is not None:
                entry.accuracy[run] = float(value)
    return report


def compare_backend_agreement(model, tasks, *, tokenizer=None, include_path=None, limit=None,
                              dtype: str = "bfloat16", batch_sizes: tuple[int, int] = (16, 1),
                              device: str = "cpu") -> AgreementReport:
    """Score `tasks` (TaskSpecs or names) of `model` with stock `hf` at both batch sizes and with `shared` at
    the first; compare per task (module doc)."""
    specs, include_paths = resolve_specs(tasks, include_path)
    session = EvaluationSession()
    first, second = (int(b) for b in batch_sizes)
    results, runs = {}, {}
    with quiet_custom_dataset_notice():
        prepared = prepare_tasks(specs, include_paths, limit, session)
        for run, backend, batch in (("stock_a", "hf", first), ("stock_b", "hf", second), ("shared", "shared", first)):
            lm = build_lm(model, tokenizer=tokenizer, dtype=dtype, batch_size=batch, device=device, backend=backend)
            if backend == "shared":
                session.share_caches(lm)
            results[run] = run_lm_eval(lm, prepared, limit)
            runs[run] = _samples_by_task(results[run])
            del lm
    return AgreementReport(compare_samples(runs, results), (first, second), dtype, device,
                           None if limit is None else int(limit))


def format_agreement(report: AgreementReport) -> str:
    a, b = report.batch_sizes
    lines = [f"backend agreement, {report.dtype} on {report.device}: stock hf at batch {a} (A) and {b} (B), "
             f"shared at batch {a}", f"rule: {RULE}", "",
             "| task | items | stock A vs B | stock A vs shared | margin | max |Δ ll| A-B | max |Δ ll| A-shared | ok |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for t in report.tasks.values():
        lines.append(f"| {t.task} | {t.items} | {len(t.stock_vs_stock)} | {len(t.stock_vs_shared)} | {t.margin} | "
                     f"{t.max_abs_diff_stock:.2e} | {t.max_abs_diff_shared:.2e} | {'yes' if t.passed else 'NO'} |")
    lines.append(f"| all | {report.items} | {report.stock_disagreements} | {report.shared_disagreements} | "
                 f"{margin_items(report.items)} | | | {'yes' if report.total_passed else 'NO'} |")
    lines.append("")
    lines.append("PASSED: shared agrees with stock as well as stock agrees with itself" if report.passed else
                 "FAILED: " + "; ".join(report.failures()))
    return "\n".join(lines)
