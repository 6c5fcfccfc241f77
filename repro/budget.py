"""Budget reproduction: what a plan costs in GPU-hours, what its sample sizes resolve, and what to run first.

Cost of a base = evaluations x (model load + evaluated items x seconds per item) + merges x merge seconds of
the method (configs/costs.yaml, kept as data and updated from a run's own timings by `update_from_run`).
Where every task of the suite has forward tokens per item counted from its tokenized requests and the
base a measured speed in seconds per 1,000 forward tokens, the evaluation term is evaluated tokens x
that speed instead (the count of the kit's scorer with prefix sharing).

Resolution of a Table 1 cell with K merged models (subsets), on per-task item samples E_t of T tasks:
the item noise of a paired delta of the suite average is sigma_i = 100 * sqrt(sum_t q / E_t) / T points
(q: share of items on which a merged model and the base differ), shared by the cell's models (the same
items), and the subset draw adds sigma_s / sqrt(K) (sigma_s: spread of deltas across subsets). The
smallest mean delta a two-sided 5% test detects with 80% power is (1.96 + 0.84) * sqrt(sigma_s^2 / K +
sigma_i^2); for one merged model it is (1.96 + 0.84) * sigma_i.

`choose_for_budget` picks, within H GPU-hours, the settings with the most evidence -- the sum over Table 1
cells of 1 / (detectable delta)^2 -- among: the first b bases (cheapest first), Task Arithmetic plus the
config's next method(s), s subsets per n, p items per task (seeded sample, identical for every model).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from statistics import median

from repro.costs import BaseCost, Costs, CostsError
from repro.plan import JobKind

Z_POWER = 1.959964 + 0.841621  # two-sided 5 %, power 80 %
SUBSET_CHOICES = (3, 5, 8, 10, 15)
ITEM_CHOICES = (50, 100, 200, 400, 800, None)  # None: every item


@dataclass(frozen=True)
class Settings:
    bases: tuple[str, ...]
    methods: tuple[str, ...]  # registry names, Task Arithmetic first
    sizes: tuple[int, ...]
    subsets: int
    per_task: int | None  # item sample per task; None = all items
    pool_size: int = 12
    suite: str = "paper16"

    def subsets_at(self, n: int) -> int:
        return 1 if n >= self.pool_size else min(self.subsets, math.comb(self.pool_size, n))


def settings_from_config(loaded) -> Settings:
    cfg = loaded.config
    sample = cfg.evaluation.item_sample
    bases = tuple(loaded.base_names)
    return Settings(bases, tuple(m.name for m in cfg.methods), tuple(cfg.merge.sizes), cfg.merge.subsets_per_size,
                    None if sample is None else sample.per_task,
                    loaded.pool_size(bases[0]) if bases else 12, cfg.evaluation.suite)


def _suite(costs: Costs, suite: str):
    if suite not in costs.suites:
        raise CostsError(f"no item counts for suite {suite!r}; add it under `suites:`", path=str(costs.path))
    return costs.suites[suite]


def evaluated_items(costs: Costs, settings: Settings) -> dict[str, int]:
    return {task: spec.evaluated(settings.per_task) for task, spec in _suite(costs, settings.suite).items()}


def evaluated_tokens(costs: Costs, settings: Settings, scorer: str = "prefix") -> float | None:
    """Forward tokens per model of the evaluated items, where every task of the suite has counted tokens
    per item (`repro evaluate --count-tokens --update-costs`); None otherwise."""
    suite = _suite(costs, settings.suite)
    if any(spec.tokens_per_item is None for spec in suite.values()):
        return None
    return sum(spec.evaluated(settings.per_task) * spec.tokens_per_item[scorer] for spec in suite.values())


def gpu_hours(costs: Costs, settings: Settings) -> dict[str, float]:
    """Estimated GPU-hours per base (a base without cost data raises, naming it)."""
    missing = [b for b in settings.bases if b not in costs.bases]
    if missing:
        raise CostsError(f"no cost data for base(s) {', '.join(missing)}; add them under `bases:` or run "
                         "`repro plan --update-costs` after a run", path=str(costs.path))
    evaluated = evaluated_items(costs, settings)
    items = sum(evaluated.values())
    tokens = evaluated_tokens(costs, settings)
    out = {}
    for base in settings.bases:
        c = costs.bases[base]
        merges = {m: sum(settings.subsets_at(n) for n in settings.sizes) for m in settings.methods}
        evaluations = 1 + settings.pool_size + sum(merges.values())
        if tokens is not None and c.eval_s_per_1k_tokens is not None:  # counted tokens x measured speed
            per_model = tokens / 1000 * c.eval_s_per_1k_tokens
        else:
            per_model = items * c.eval_s_per_item
        seconds = evaluations * (c.model_load_s + per_model)
        seconds += sum(count * c.merge_seconds(m) for m, count in merges.items())
        out[base] = seconds / 3600
    return out


def item_sd_points(costs: Costs, settings: Settings) -> float:
    items = evaluated_items(costs, settings)
    return 100 * math.sqrt(sum(costs.item_disagreement / e for e in items.values())) / len(items)


def detectable_delta(costs: Costs, settings: Settings, n: int) -> float:
    """Smallest mean delta (points) of a Table 1 cell at size n detected at 5 % with 80 % power."""
    k = settings.subsets_at(n)
    return Z_POWER * math.sqrt(costs.subset_sd_points**2 / k + item_sd_points(costs, settings) ** 2)


def evidence(costs: Costs, settings: Settings) -> float:
    cells = len(settings.bases) * len(settings.methods)
    return cells * sum(1 / detectable_delta(costs, settings, n) ** 2 for n in settings.sizes)


def choose_for_budget(costs: Costs, upper: Settings, hours: float, *, max_methods: int = 2) -> Settings | None:
    """The settings within `hours` with the most evidence (None if not even the smallest fits)."""
    bases = sorted(upper.bases, key=lambda b: gpu_hours(costs, replace(upper, bases=(b,)))[b])
    best, best_key = None, None
    for b, m, s, p in itertools.product(range(1, len(bases) + 1), range(1, min(max_methods, len(upper.methods)) + 1),
                                        [s for s in SUBSET_CHOICES if s <= upper.subsets] or [upper.subsets],
                                        ITEM_CHOICES):
        candidate = replace(upper, bases=tuple(bases[:b]), methods=upper.methods[:m], subsets=s, per_task=p)
        cost = sum(gpu_hours(costs, candidate).values())
        if cost > hours:
            continue
        key = (round(evidence(costs, candidate), 9), -cost)
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best


def describe(costs: Costs, settings: Settings, headline_method: str | None = None) -> list[str]:
    hours = gpu_hours(costs, settings)
    items = sum(evaluated_items(costs, settings).values())
    sample = "all items" if settings.per_task is None else f"{settings.per_task} items per task (seeded, same for every model)"
    lines = [f"estimated GPU-hours: {sum(hours.values()):.1f} on {costs.gpu or 'the costed GPU'} ("
             + ", ".join(f"{b} {h:.1f}" for b, h in hours.items()) + ")",
             f"  per model: {items} items evaluated ({sample}); costs from {costs.path}"]
    tokens = evaluated_tokens(costs, settings)
    if tokens is not None:
        stock = evaluated_tokens(costs, settings, "stock")
        lines.append(f"  forward tokens per model (counted): {tokens:,.0f} with prefix sharing, {stock:,.0f} for stock "
                     "lm-eval; bases with a measured s per 1k tokens are priced by tokens")
    for base in settings.bases:
        lines.append(f"  {base}: {costs.bases[base].source or 'source not stated'}")
    method = headline_method or settings.methods[0]
    per_n = ", ".join(f"n={n} (K={settings.subsets_at(n)}) {detectable_delta(costs, settings, n):.2f}"
                      for n in settings.sizes)
    lines += [f"resolution (smallest mean delta detected, 5% two-sided, 80% power, in accuracy points): "
              f"Table 1 {method} cells: {per_n}; one merged model vs its base: {Z_POWER * item_sd_points(costs, settings):.2f}",
              f"  assumptions: item disagreement {costs.item_disagreement:.3f}, subset sd {costs.subset_sd_points:.2f} "
              f"points ({costs.resolution_source or 'source not stated'})"]
    return lines


def update_from_run(costs: Costs, plan, store) -> list[str]:
    """Replace cost entries with the medians of a run's recorded timings and item statistics."""
    # numpy: deferred so that importing this module does not load it
    import numpy as np

    from repro.report.item_data import load_item_matrix

    finished = store.finished_ids()
    jobs = [j for j in plan.main_grid() if j.id in finished]
    records = {j.id: store.read_result(j.id) for j in jobs}
    changes = []
    for base in sorted({j.base for j in jobs}):
        per_item, merges = [], {}
        for job in (j for j in jobs if j.base == base):
            record = records[job.id]
            merge_s = record.merge_elapsed_s
            items = record.primary_items()
            if record.elapsed_s and items:
                per_item.append((float(record.elapsed_s) - merge_s) / items)
            if job.kind is JobKind.MERGE and merge_s:
                merges.setdefault(job.method, []).append(merge_s)
        if not per_item:
            continue
        old = costs.bases.get(base)
        devices = sorted({str(records[j.id].eval_device) for j in jobs if j.base == base})
        costs.bases[base] = BaseCost(
            median(per_item), 0.0 if old is None else old.model_load_s,
            {**({} if old is None else old.merge_s), **{m: median(v) for m, v in merges.items()}},
            f"measured: run {plan.config_name}, {len(per_item)} jobs, device {','.join(devices)} (load time included "
            "in s/item)",
        )
        changes.append(f"{base}: {median(per_item):.4g} s/item; merges "
                       + (", ".join(f"{m} {median(v):.1f} s" for m, v in merges.items()) or "none"))
    merged = [j for j in jobs if j.kind is JobKind.MERGE]
    base_ids = {j.base: j.id for j in jobs if j.kind is JobKind.BASE}
    merged = [j for j in merged if j.base in base_ids]
    if merged:
        matrix = load_item_matrix(store, list(base_ids.values()) + [j.id for j in merged])
        costs.item_disagreement = float(np.mean([
            np.mean([np.mean(f[:, matrix.column(j.id)] != f[:, matrix.column(base_ids[j.base])]) for f in matrix.flags])
            for j in merged]))
        cells: dict = {}
        for j in merged:
            delta = 100 * (records[j.id].average - records[base_ids[j.base]].average)
            cells.setdefault((j.base, j.label, j.n), []).append(delta)
        sds = [float(np.std(v, ddof=1)) for v in cells.values() if len(v) > 1]
        if sds:
            costs.subset_sd_points = float(np.sqrt(np.mean(np.square(sds))))
        costs.resolution_source = f"measured: run {plan.config_name}, {len(merged)} merged models"
        changes.append(f"resolution: item disagreement {costs.item_disagreement:.3f}, "
                       f"subset sd {costs.subset_sd_points:.3f} points")
    return changes
