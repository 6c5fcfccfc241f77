"""Per-model GPU costs and resolution assumptions (configs/costs.yaml): the only reader and writer.

The planner (repro.budget) prices a plan with these numbers; `repro.budget.update_from_run` replaces a
base's entry with the medians of a finished run's own recorded timings and the resolution inputs with what
the run's per-item results show, and `save_costs` writes the file back (atomically).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from repro.atomic_io import atomic_write_text
from repro.errors import MergeError, ReproError
from repro.facts.paths import COSTS_FILE, repo_path
from repro.method_catalog import get_method

DEFAULT_COSTS_PATH = repo_path(COSTS_FILE)


class CostsError(ReproError):
    """A malformed or incomplete costs file."""


@dataclass
class BaseCost:
    eval_s_per_item: float
    model_load_s: float
    merge_s: dict[str, float]
    source: str = ""
    eval_s_per_1k_tokens: float | None = None  # measured per 1,000 forward tokens of the kit's scorer


    def merge_seconds(self, method: str) -> float:
        """One merge with `method`: the base's entry for the method, else for the method's cost class
        (trait `cost_class`, e.g. "svd"), else its "default" entry."""
        if method in self.merge_s:
            return float(self.merge_s[method])
        try:
            cost_class = get_method(method).traits.cost_class
        except MergeError:  # not a known method: priced as the default
            cost_class = "default"
        return float(self.merge_s.get(cost_class, self.merge_s.get("default", 0.0)))


@dataclass
class SuiteTask:
    items: int
    leaves: int = 1
    # forward tokens per item, {"stock", "item", "prefix"}, counted from the tokenized requests
    # (`repro evaluate --count-tokens --update-costs`); None: not counted
    tokens_per_item: dict[str, float] | None = None

    def evaluated(self, per_task: int | None) -> int:
        return self.items if per_task is None else min(self.items, per_task * self.leaves)


@dataclass
class Costs:
    gpu: str
    bases: dict[str, BaseCost]
    suites: dict[str, dict[str, SuiteTask]]
    item_disagreement: float
    subset_sd_points: float
    resolution_source: str = ""
    raw: dict = field(default_factory=dict)
    path: Path | None = None


def load_costs(path: str | Path | None = None) -> Costs:
    path = Path(path) if path is not None else DEFAULT_COSTS_PATH
    if not path.is_file():
        raise CostsError("costs file not found; pass --costs PATH (see configs/costs.yaml)", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CostsError(f"not valid YAML: {exc}", path=str(path)) from exc
    problems: list[str] = []
    bases = {}
    for name, entry in (raw.get("bases") or {}).items():
        try:
            per_1k = entry.get("eval_s_per_1k_tokens")
            bases[name] = BaseCost(float(entry["eval_s_per_item"]), float(entry["model_load_s"]),
                                   {k: float(v) for k, v in (entry.get("merge_s") or {}).items()},
                                   str(entry.get("source", "")), None if per_1k is None else float(per_1k))
        except (KeyError, TypeError, ValueError):
            problems.append(f"bases.{name}: needs numeric eval_s_per_item, model_load_s and a merge_s mapping")
    suites = {}
    for suite, entry in (raw.get("suites") or {}).items():
        tasks = {}
        for task, spec in ((entry or {}).get("tasks") or {}).items():
            try:
                tokens = spec.get("tokens_per_item")
                tasks[task] = SuiteTask(int(spec["items"]), int(spec.get("leaves", 1)),
                                        None if tokens is None else {k: float(tokens[k]) for k in ("stock", "item", "prefix")})
            except (KeyError, TypeError, ValueError, AttributeError):
                problems.append(f"suites.{suite}.tasks.{task}: needs integer items (and leaves; tokens_per_item, "
                                "where given, a mapping with numeric stock, item and prefix)")
        suites[suite] = tasks
    resolution = raw.get("resolution") or {}
    try:
        disagreement, subset_sd = float(resolution["item_disagreement"]), float(resolution["subset_sd_points"])
    except (KeyError, TypeError, ValueError):
        problems.append("resolution: needs numeric item_disagreement and subset_sd_points")
        disagreement = subset_sd = 0.0
    if problems:
        raise CostsError("; ".join(problems), path=str(path))
    return Costs(str(raw.get("gpu", "")), bases, suites, disagreement, subset_sd,
                 str(resolution.get("source", "")), raw, path)


def _suite_task_entry(task: SuiteTask) -> dict:
    entry: dict = {"items": task.items}
    if task.leaves != 1:
        entry["leaves"] = task.leaves
    if task.tokens_per_item is not None:
        entry["tokens_per_item"] = {k: round(v, 1) for k, v in task.tokens_per_item.items()}
    return entry


def save_costs(costs: Costs, path: str | Path) -> Path:
    raw = dict(costs.raw)
    raw["bases"] = {**(raw.get("bases") or {}), **{
        name: {"source": c.source, "eval_s_per_item": round(c.eval_s_per_item, 6), "model_load_s": round(c.model_load_s, 1),
               "merge_s": {k: round(v, 1) for k, v in c.merge_s.items()},
               **({} if c.eval_s_per_1k_tokens is None else {"eval_s_per_1k_tokens": round(c.eval_s_per_1k_tokens, 6)})}
        for name, c in costs.bases.items()}}
    raw["suites"] = {**(raw.get("suites") or {}), **{
        suite: {**((raw.get("suites") or {}).get(suite) or {}),
                "tasks": {t: _suite_task_entry(s) for t, s in tasks.items()}} for suite, tasks in costs.suites.items()}}
    raw["resolution"] = {"source": costs.resolution_source, "item_disagreement": round(costs.item_disagreement, 4),
                         "subset_sd_points": round(costs.subset_sd_points, 4)}
    header = ("# Per-model GPU costs for budget planning (see repro/costs.py); "
              "updated by `repro plan --update-costs`.\n")
    return atomic_write_text(path, header + yaml.safe_dump(raw, sort_keys=False))
