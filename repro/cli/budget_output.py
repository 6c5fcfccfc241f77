"""The budget part of `repro plan`: estimated GPU-hours and resolution, --budget-gpu-hours, --update-costs."""

from __future__ import annotations

from dataclasses import replace

import yaml

from repro.atomic_io import atomic_write_text
from repro.budget import choose_for_budget, describe, gpu_hours, settings_from_config, update_from_run
from repro.costs import DEFAULT_COSTS_PATH, CostsError, load_costs, save_costs
from repro.errors import ReproError


def print_budget(args, loaded, plan, runs_dir) -> int:
    costs_path = args.costs or DEFAULT_COSTS_PATH
    if args.update_costs:
        # loaded when the command runs, so that `repro --help` stays light
        from repro.results import ResultsStore

        costs = load_costs(costs_path)
        changes = update_from_run(costs, plan, ResultsStore(runs_dir))
        if not changes:
            raise ReproError(f"no finished results with timings under {runs_dir}; run the config first",
                             field="--update-costs")
        save_costs(costs, costs_path)
        print("costs updated in " + str(costs_path) + ": " + "; ".join(changes))
    if not costs_path.is_file() and args.costs is None and args.budget_gpu_hours is None:
        return 0
    costs = load_costs(costs_path)
    settings = settings_from_config(loaded)
    if args.budget_gpu_hours is None:
        if settings.methods and all(b in costs.bases for b in settings.bases) and settings.suite in costs.suites:
            print("\n".join(describe(costs, settings)))
        return 0
    if args.budget_gpu_hours <= 0:
        raise ReproError("must be a positive number of GPU-hours", field="--budget-gpu-hours")
    try:
        chosen = choose_for_budget(costs, settings, args.budget_gpu_hours, max_methods=max(1, args.max_methods))
    except CostsError:
        raise
    if chosen is None:
        smallest = replace(settings, bases=settings.bases[:1], methods=settings.methods[:1], subsets=3, per_task=50)
        raise ReproError(f"{args.budget_gpu_hours:g} GPU-hours buy nothing useful: the smallest reduced run "
                         f"(1 base, 1 method, 3 subsets, 50 items per task) needs "
                         f"{sum(gpu_hours(costs, smallest).values()):.1f}", field="--budget-gpu-hours")
    sample = "all items" if chosen.per_task is None else f"{chosen.per_task} items per task"
    print(f"budget {args.budget_gpu_hours:g} GPU-hours -> bases {', '.join(chosen.bases)}; methods "
          f"{', '.join(chosen.methods)}; {chosen.subsets} subsets per n; {sample}")
    print("\n".join(describe(costs, chosen)))
    if args.write_config is not None:
        write_budget_config(loaded, chosen, args.write_config)
        print(f"config written to {args.write_config}; run it with `repro run --config {args.write_config}`")
    return 0


def write_budget_config(loaded, chosen, path) -> None:
    raw = yaml.safe_load(loaded.path.read_text(encoding="utf-8"))
    raw["name"] = f"{loaded.name}-budget"
    raw["description"] = (f"{loaded.name} reduced by `repro plan --budget-gpu-hours`: {len(chosen.bases)} base(s), "
                          f"{len(chosen.methods)} method(s), {chosen.subsets} subsets per n")
    if raw.get("bases"):
        raw["bases"] = list(chosen.bases)
    raw["methods"] = [m for m in raw.get("methods", []) if m["name"] in chosen.methods]
    raw.pop("methods_from", None)
    keep = {m["name"] for m in raw["methods"]} | {m.get("label") for m in raw["methods"]}
    report = raw.get("report")
    if isinstance(report, dict):  # tables keep only the methods still run; appendix runs are not part of it
        for table in ("table1", "table2", "table3"):
            if isinstance(report.get(table), list):
                report[table] = [m for m in report[table] if m in keep]
        report.pop("appendix_configs", None)
    raw["merge"]["subsets_per_size"] = chosen.subsets
    evaluation = raw.setdefault("evaluation", {})
    evaluation.pop("limit", None)
    if chosen.per_task is None:
        evaluation.pop("item_sample", None)
    else:
        evaluation["item_sample"] = {"per_task": chosen.per_task, "seed": int(raw.get("seed", 0))}
    atomic_write_text(path, "# Written by `repro plan --budget-gpu-hours`; edit freely.\n"
                      + yaml.safe_dump(raw, sort_keys=False))
