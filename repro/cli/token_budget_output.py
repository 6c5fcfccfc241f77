"""`repro evaluate --count-tokens`: the token budget of a suite or task list, printed (and written to costs)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from repro.costs import DEFAULT_COSTS_PATH, SuiteTask, load_costs, save_costs
from repro.errors import EvaluationError


def run_count_tokens(args: argparse.Namespace, tasks) -> int:
    problems = []
    if not args.count_tokens:
        problems.append("--update-costs needs --count-tokens")
    if args.update_costs is not None and not args.suite:
        problems.append("--update-costs needs --suite (costs are kept per suite)")
    if problems:
        raise EvaluationError("; ".join(problems), field="--update-costs")
    # lm_eval: deferred so that importing this module does not load it
    from repro.evaluate.token_budget import count_suite_tokens, format_token_budget

    model = args.model[0]
    limit = None if args.limit is None else (int(args.limit) if float(args.limit).is_integer() else args.limit)
    rows = count_suite_tokens(model, tasks, include_path=args.include_path, limit=limit)
    if args.json:
        print(json.dumps({"model": str(model), "limit": limit, "tasks": [r.to_json() for r in rows]}, indent=2))
    else:
        print(format_token_budget(rows, by_parent=not args.leaves))
        print(f"forward token positions per model (padding excluded), tokenizer and context length of {model}"
              + (f", first {limit} items per task" if limit else ""))
    if args.update_costs is not None:
        if limit is not None:
            raise EvaluationError("--update-costs counts every item: drop --limit", field="--limit")
        print(_update_costs(args, rows))
    return 0


def _update_costs(args: argparse.Namespace, rows) -> str:
    # lm_eval: deferred so that importing this module does not load it
    from repro.evaluate.token_budget import SCORERS, totals_by_parent

    path = DEFAULT_COSTS_PATH if args.update_costs is True else args.update_costs
    costs = load_costs(path)
    suite = costs.suites.setdefault(args.suite, {})
    for task, entry in totals_by_parent(rows).items():
        suite[task] = SuiteTask(entry["items"], entry["leaves"],
                                {k: entry[k] / entry["items"] for k in SCORERS} if entry["items"] else None)
    raw_suite = costs.raw.setdefault("suites", {}).setdefault(args.suite, {}) or {}
    raw_suite["source"] = (f"counted: repro evaluate --count-tokens, tokenizer of {args.model[0].name}, "
                           f"{datetime.now(UTC).date().isoformat()}")
    costs.raw["suites"][args.suite] = raw_suite
    written = save_costs(costs, path)
    return f"costs: suite {args.suite} items and tokens per item written to {written}"
