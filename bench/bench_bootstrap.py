"""Speed of the paired item bootstrap (repro.report.paired_bootstrap) at the kit's scales.

Synthetic correctness flags with the paper16 suite's item counts (configs/costs.yaml): each merged model
differs from its base on ~12% of items. Times `accuracy_replicates` (10,000 resamples, every model on the
same resampled items) and the hierarchical cell bootstraps of all Table 1 cells.

    python bench/bench_bootstrap.py [--quick]      (results: runs/bench/bootstrap.json)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pages import provenance, write_page  # noqa: E402  (bench/pages.py)

from repro.costs import load_costs  # noqa: E402
from repro.report.paired_bootstrap import accuracy_replicates, cell_bootstrap  # noqa: E402


def scenario(name: str, models: int, per_task: int | None, resamples: int = 10_000) -> dict:
    costs = load_costs()
    counts = [spec.evaluated(per_task) for spec in costs.suites["paper16"].values()]
    rng = np.random.default_rng(0)
    flags = []
    for n in counts:
        base = rng.random((n, 1)) < 0.55
        flags.append(np.where(rng.random((n, models)) < 0.12, ~base, base).astype(np.uint8))
    start, cpu = time.perf_counter(), time.process_time()
    observed, replicates = accuracy_replicates(flags, resamples=resamples, seed=0)
    t_items, cpu_items = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    cells = 0
    for first in range(1, models - 14, 15):
        cell_bootstrap(observed, replicates, list(range(first, first + 15)), 0, seed=first)
        cells += 1
    t_cells = time.perf_counter() - start
    out = {"scenario": name, "models": models, "items_per_model": int(sum(counts)), "resamples": resamples,
           "item_bootstrap_s": round(t_items, 2), "item_bootstrap_cpu_s": round(cpu_items, 2), "cells": cells, "cell_bootstraps_s": round(t_cells, 2)}
    print(json.dumps(out))
    return out


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    load_before = os.getloadavg()
    results = [scenario("reduced (1 base, TA+TIES, 5 subsets, 800 items/task)", 65, 800)]
    if not quick:
        results.append(scenario("one paper base, all 7 methods, 200 items/task", 550, 200))
        results.append(scenario("one paper base, all 7 methods, all items", 550, None))
    path = ROOT / "runs" / "bench" / "bootstrap.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"provenance": provenance(["bench/bench_bootstrap.py", *argv]), "results": results,
              "load_before": load_before, "load_after": os.getloadavg()}
    path.write_text(json.dumps(record, indent=2))
    print(f"page: {write_page('bootstrap', record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
